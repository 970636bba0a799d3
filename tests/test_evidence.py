"""The gate decides from version-bound evidence alone (real Delta, real GX, real processes).

* a write without validation, then ``certify``: blocked, "not validated at version V";
* a forced region run landing data that fails a block expectation, raced against
  ``certify`` (10 times): no certification of unvalidated or failing data is ever in force;
* every region on its own storage (``{region}`` root, a separate control root): with the
  regions' storage moved away after the region steps, ``certify`` reaches the same decisions
  on a clean day and a ``stale_reference`` day, naming the region and the keys;
* a reconciliation module that fails to import blocks;
* re-running an unchanged older interval writes no table version and keeps its generation.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import shutil
import sys
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from pipelines.certify import current_certified, decisions
from pipelines.control import evidence as store
from pipelines.control.evidence import publish_write
from pipelines.runner import certify, ingest, run_interval, run_region, transform, validate
from pipelines.sources.synthetic import transactions
from pipelines.spec import Interval, PipelineSpec, parse_spec
from pipelines.storage import read_table, table_version, write_interval
from tests.conftest import REPO, small_spec_data

D1, D2, D3 = (Interval.for_date(f"2026-01-0{i}") for i in (1, 2, 3))


def file_spec(tmp: Path, regions: int = 2, **storage: Any) -> PipelineSpec:
    """The flagship, shrunk, with its transactions delivered as parquet files per region."""
    data = small_spec_data(regions, 300)
    data["sources"]["transactions"] = {"kind": "parquet", "path": str(tmp / "landing/{region}/{ds}.parquet")}
    data["storage"] = {"root": str(tmp / "lake"), **storage}
    return parse_spec(data, "evidence-test").with_path(REPO / "dags" / "fraud_features.yaml")


def deliver(spec: PipelineSpec, tmp: Path, region: str, ds: str, *, bad: bool = False, seed: int = 7) -> None:
    df = transactions(region, date.fromisoformat(ds), regions=spec.regions, rows=300, merchants=200, seed=seed)
    if bad:  # fails the block expectation currency ~ ^[A-Z]{3}$
        df = df.with_columns(pl.col("currency").str.to_lowercase())
    path = tmp / "landing" / region / f"{ds}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    df.write_parquet(path)


def deliver_all(spec: PipelineSpec, tmp: Path, *days: str) -> None:
    for ds in days:
        for region in spec.regions:
            deliver(spec, tmp, region, ds)


def certified_currencies(spec: PipelineSpec, region: str) -> set[str]:
    d = current_certified(spec, at=D1.key)
    assert d is not None
    v = d.generation.version(region, "raw", "transactions")
    uri = spec.table_uri(region, "raw", "transactions")
    return set(read_table(uri, version=v, partition={"ds": D1.ds}).collect()["currency"].unique().to_list())


def test_a_write_without_validation_then_certify_blocks(tmp_path: Path) -> None:
    spec = file_spec(tmp_path)
    deliver_all(spec, tmp_path, D1.ds)
    assert run_interval(spec, D1).decision.certified  # type: ignore[union-attr]
    r0 = spec.regions[0]
    deliver(spec, tmp_path, r0, D1.ds, bad=True)
    ingest(spec, D1, r0)  # lands (and profiles) the bad delivery; nobody validates it
    transform(spec, D1, r0)
    decision = certify(spec, D1)
    assert not decision.certified
    v = table_version(spec.table_uri(r0, "raw", "transactions"))
    msgs = [r["message"] for r in decision.reasons]
    assert any(f"{r0}/raw/transactions: not validated at version {v}" in m for m in msgs), msgs
    assert certified_currencies(spec, r0) == {c.upper() for c in certified_currencies(spec, r0)}
    # once validated, it blocks on the failing expectation itself, still naming the version
    validate(spec, D1, r0)
    again = certify(spec, D1)
    assert not again.certified
    assert any("currency" in r["message"] and f"@v{v}" in r["message"] for r in again.reasons), again.reasons
    assert all(c.isupper() for c in certified_currencies(spec, r0))


def _forced_run(spec_json: str, region: str) -> None:
    spec = parse_spec(json.loads(spec_json), "evidence-test").with_path(REPO / "dags" / "fraud_features.yaml")
    run_region(spec, D1, region, force=True, run_id="racer")


def _certify(spec_json: str, out: str) -> None:
    spec = parse_spec(json.loads(spec_json), "evidence-test").with_path(REPO / "dags" / "fraud_features.yaml")
    d = certify(spec, D1)
    Path(out).write_text(json.dumps({"status": d.status, "generation": d.generation.members}))


def test_race_between_a_forced_bad_run_and_certify_never_certifies_bad_data(tmp_path: Path) -> None:
    spec = file_spec(tmp_path)
    deliver_all(spec, tmp_path, D1.ds)
    assert run_interval(spec, D1).decision.certified  # type: ignore[union-attr]
    r0 = spec.regions[0]
    payload = json.dumps(spec.model_dump(mode="json"))
    ctx = mp.get_context("forkserver")
    outcomes = []
    for i in range(10):
        deliver(spec, tmp_path, r0, D1.ds, bad=True, seed=100 + i)  # a new bad delivery each time
        out = tmp_path / f"certify-{i}.json"
        runner = ctx.Process(target=_forced_run, args=(payload, r0))
        gate = ctx.Process(target=_certify, args=(payload, str(out)))
        runner.start()
        gate.start()
        runner.join(300)
        gate.join(300)
        assert runner.exitcode == 0 and gate.exitcode == 0
        outcomes.append(json.loads(out.read_text())["status"])
        # whatever the interleaving, what is in force was validated and passes
        assert all(c.isupper() for c in certified_currencies(spec, r0)), (i, outcomes)
    assert not certify(spec, D1).certified  # after the race: the bad version is what is judged
    assert all(c.isupper() for c in certified_currencies(spec, r0))


def test_regions_on_their_own_storage_gate_from_evidence_alone(tmp_path: Path) -> None:
    data = small_spec_data(3, 300)
    regional = tmp_path / "regions"
    data["storage"] = {"root": str(regional / "{region}"), "control_root": str(tmp_path / "control")}
    data["sources"]["merchant_risk"]["faults"] = [
        {"kind": "stale_reference", "regions": [data["regions"][2]], "dates": [D2.ds]}]
    spec = parse_spec(data, "evidence-test").with_path(REPO / "dags" / "fraud_features.yaml")
    for iv in (D1, D2):
        run_interval(spec, iv, certify=False)
    for region in spec.regions:  # each region's tables live under its own root
        assert (regional / region / spec.name / region / "raw" / "transactions" / "_delta_log").is_dir()
    assert not (tmp_path / "control" / spec.name / spec.regions[0]).exists()
    first = {iv.key: certify(spec, iv) for iv in (D1, D2)}
    shutil.move(str(regional), str(tmp_path / "elsewhere"))  # no region's data is readable now
    second = {iv.key: certify(spec, iv) for iv in (D1, D2)}
    assert first[D1.key].certified and second[D1.key].certified
    assert first[D1.key].generation_id == second[D1.key].generation_id
    assert not first[D2.key].certified and not second[D2.key].certified
    stale = spec.regions[2]
    for d in (first[D2.key], second[D2.key]):
        parity = [r for r in d.reasons if r["check_id"] == "parity.merchant_risk"]
        assert parity and parity[0]["region"] == stale and "keys [" in parity[0]["message"], d.reasons
    assert [r["message"] for r in first[D2.key].reasons] == [r["message"] for r in second[D2.key].reasons]


def test_a_reconcile_module_that_fails_to_import_blocks(root: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import make_spec

    spec = make_spec(regions=2)
    run_interval(spec, D1, root=root, certify=False)
    monkeypatch.setitem(sys.modules, "pipelines.reconcile.drift", None)  # import now raises ImportError
    d = certify(spec, D1, root=root)
    assert not d.certified
    assert any(r["check_id"] == "drift.card_features" and "Error" in r["message"] and "could not run" in r["message"] for r in d.reasons), d.reasons
    monkeypatch.setitem(sys.modules, "pipelines.reconcile", None)
    d = certify(spec, D1, root=root)
    assert not d.certified and d.reasons[0]["check_id"] == "reconcile.import"


def test_rerunning_an_unchanged_older_interval_writes_nothing(tmp_path: Path) -> None:
    spec = file_spec(tmp_path)
    deliver_all(spec, tmp_path, D1.ds, D2.ds, D3.ds)
    first = run_interval(spec, D1)
    run_interval(spec, D2)
    run_interval(spec, D3)
    versions = {(r, t.layer, t.name): table_version(spec.table_uri(r, t.layer, t.name))
                for r in spec.regions for t in spec.tables}
    again = run_interval(spec, D1)
    assert all(ref.skipped for r in again.regions for ref in r.tables)
    assert versions == {(r, t.layer, t.name): table_version(spec.table_uri(r, t.layer, t.name))
                        for r in spec.regions for t in spec.tables}
    assert first.decision is not None and again.decision is not None
    assert again.decision.certified and again.decision.generation_id == first.decision.generation_id


def test_a_profile_killed_before_publishing_is_published_by_the_retry(tmp_path: Path) -> None:
    spec = file_spec(tmp_path, regions=1)
    deliver_all(spec, tmp_path, D1.ds)
    r0 = spec.regions[0]
    frame = pl.read_parquet(tmp_path / "landing" / r0 / f"{D1.ds}.parquet")
    # the write committed, the task died before its profile: no evidence about this version
    from pipelines.runner.steps import _app_id
    from pipelines.sources import read_source
    from pipelines.storage import fingerprint
    from pipelines.version import CODE_VERSION

    t = spec.table("transactions")
    fp = fingerprint("ingest", CODE_VERSION, read_source(spec, t, r0, D1).identity, t.model_dump(mode="json"))
    write_interval(spec.table_uri(r0, "raw", "transactions"), frame, partition={"ds": D1.ds},
                   app_id=_app_id(spec, r0, "raw", "transactions", D1), fingerprint=fp)
    assert store.load(spec, [D1.key]).newest(r0, "raw", "transactions", D1.key) is None
    refs = ingest(spec, D1, r0)  # the retry: the write is skipped, its profile published
    assert refs[0].skipped
    p = store.load(spec, [D1.key]).newest(r0, "raw", "transactions", D1.key)
    assert p is not None and p.version == refs[0].version and p.rows == frame.height


def test_a_changed_profile_plan_makes_old_evidence_stale(root: str) -> None:
    from tests.conftest import make_spec

    spec = make_spec(regions=2)
    run_interval(spec, D1, root=root)
    data = spec.model_dump(mode="json")
    data["reconcile"]["drift"][0]["columns"]["merchant_txn_1d"] = {"psi": 0.5, "ks": 0.5}
    changed = parse_spec(data, "t").with_path(spec.path)
    d = certify(changed, D1, root=root)
    assert not d.certified
    assert any("stale profile" in r["message"] for r in d.reasons), d.reasons
    assert len(decisions(spec, root=root)) == 2


def test_evidence_publish_and_decode_round_trip(tmp_path: Path) -> None:
    spec = file_spec(tmp_path, regions=1)
    deliver_all(spec, tmp_path, D1.ds)
    r0 = spec.regions[0]
    run_interval(spec, D1, certify=False)
    ev = store.load(spec, [D1.key])
    p = ev.newest(r0, "reference", "merchant_risk", D1.key)
    assert p is not None and p.digest is not None and p.keyed is not None
    assert p.keyed.height == p.rows == p.digest["rows"] and ev.bytes_read > 0
    f = ev.newest(r0, "features", "card_features", D1.key)
    assert f is not None and set(f.hist) == {"amount", "amount_sum_24h", "txn_count_24h"}
    assert int(f.hist["amount"][1].sum()) == f.rows  # every non-null amount counted once
    t = spec.table("card_features")
    frame = read_table(spec.table_uri(r0, "features", "card_features"), partition={"ds": D1.ds}).collect()
    from pipelines.storage import TableRef

    again = publish_write(spec, r0, t, "features", D1, frame, TableRef(spec.table_uri(r0, "features", "card_features"),
                          f.version, frame.height, {"ds": D1.ds}))
    assert again.totals == pytest.approx(f.totals, rel=1e-12) and again.event_max == f.event_max


def test_lookback_coverage_is_recorded_per_version_and_blocks_when_the_spec_says(root: str) -> None:
    from tests.conftest import small_spec_data

    data = small_spec_data(2, 300)
    for fs in data["features"]:
        fs["lookback_coverage"] = "block"
    spec = parse_spec(data, "t").with_path(REPO / "dags" / "fraud_features.yaml")
    d3 = run_interval(spec, D3, root=root)  # a backfill starting mid-range: no history before D3
    assert d3.decision is not None and not d3.decision.certified
    reasons = [r for r in d3.decision.reasons if "lookback_coverage.card" in r["message"]]
    assert reasons and "2026-01-02" in reasons[0]["message"], d3.decision.reasons
    warn = run_interval(parse_spec(small_spec_data(2, 300), "t").with_path(spec.path), D3, root=root + "-warn")
    assert warn.decision is not None and warn.decision.certified  # warn by default: recorded, not blocking


def test_a_descent_past_the_profile_asks_the_region_for_keys_and_hashes(root: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import pipelines.evidence.profile as profile_mod
    from pipelines.reconcile import run_checks
    from tests.reconcile.conftest import DAY, put, ref_frame, tiny_spec

    monkeypatch.setattr(profile_mod, "KEYED_LIMIT", 10)  # profiles of 50 rows carry no keyed digest
    spec = tiny_spec({"parity": [{"table": "ref", "keys": ["k"], "residency": "strict"}]})
    for region in ("r1", "r2"):
        put(spec, root, region, "reference", "ref", ref_frame())
    stale = ref_frame().with_columns(score=pl.when(pl.col("k") < 3).then(9.9).otherwise(pl.col("score")))
    put(spec, root, "r3", "reference", "ref", stale)
    assert store.load(spec, [DAY.key], root=root).newest("r3", "reference", "ref", DAY.key).keyed is None  # type: ignore[union-attr]
    res = {r.region: r for r in run_checks(spec, DAY, root=root) if r.check_type == "parity"}
    r3 = res["r3"]
    assert not r3.success and sorted(r3.details["changed_keys"]) == [0, 1, 2] and r3.details["changed_columns"] == {"score": 3}
    assert not r3.details["from_evidence"] and r3.details["samples"] == []  # strict: no values crossed
    assert r3.details["bytes_moved"] > 16
    shutil.rmtree(Path(root) / spec.name / "r3")  # the region cannot answer: the check blocks, with its reason
    blocked = [r for r in run_checks(spec, DAY, root=root) if r.check_id == "parity.ref" and not r.success]
    assert blocked and all(r.blocking for r in blocked), blocked
