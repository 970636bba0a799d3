"""A certification binds everything it decides on; each case is an attack that used to pass.

Tried as an adversarial operator would, with a 2-region pipeline whose transactions arrive as
files, through the runner and the real CLI (real Delta, real GX suites, real processes with
skewed clocks under ``faketime``):

1. suite flip-flop: validated under a strict suite (fails), again under a lenient one, the
   strict one restored: the gate judges the batch under the current suite;
2. a validated table's suite removed: the gate blocks naming the file, ``lockstep check`` fails;
3. a re-delivered raw version beside the old feature version: lineage blocks, naming both;
4. the failing rows of one validation batch deleted from the region's ``checks``: incomplete, blocks;
5. an override after a fix does not re-instate the old block unless asked to by name;
6. an override names the generation reviewed; a newer block in between refuses it;
7. the log is folded in commit order: writers with clocks a year ahead and two days behind.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml
from deltalake import DeltaTable

from pipelines.certify import (
    active_certifications,
    current_certified,
    decisions,
    override,
    read_certified,
    rollback,
)
from pipelines.control.tables import REGION_RESULTS_TABLE
from pipelines.errors import CertificationError
from pipelines.runner import INPUT_LAYERS, certify, ingest, run_interval, validate
from pipelines.spec import Interval, PipelineSpec, load_spec
from tests.conftest import REPO, small_spec_data
from tests.test_bad_input import cli
from tests.test_evidence import deliver, deliver_all

D1, D2 = Interval.for_date("2026-01-01"), Interval.for_date("2026-01-02")
LOCKSTEP = str(Path(sys.executable).with_name("lockstep"))

STRICT = {"type": "expect_column_values_to_be_between",
          "kwargs": {"column": "amount", "min_value": 0, "max_value": 1},
          "meta": {"lockstep": {"policy": "block"}}}


def lake(tmp: Path, regions: int = 2) -> PipelineSpec:
    """A spec file in ``tmp`` (transactions delivered as parquet per region) with its own copy
    of the expectation suites, so a test can edit or remove them."""
    shutil.copytree(REPO / "expectations", tmp / "expectations")
    data = small_spec_data(regions, 300)
    data["sources"]["transactions"] = {"kind": "parquet", "path": str(tmp / "landing/{region}/{ds}.parquet")}
    data["storage"] = {"root": str(tmp / "lake")}
    data["validation"]["suites_dir"] = str(tmp / "expectations")
    path = tmp / "bound.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_spec(path)


def certified_day(tmp: Path) -> tuple[PipelineSpec, Any, str, pl.DataFrame]:
    """A lake with D1 certified: the spec, the decision, the first region and its certified features."""
    spec = lake(tmp)
    deliver_all(spec, tmp, D1.ds)
    good = run_interval(spec, D1).decision
    assert good is not None and good.certified
    r0 = spec.regions[0]
    return spec, good, r0, amounts(spec, r0)


def blocked_day(tmp: Path) -> tuple[PipelineSpec, str, Any]:
    """A lake with D1 blocked: the first region delivered rows failing a block expectation
    (lower-case currencies), the second clean; the spec, the first region and the block."""
    spec = lake(tmp)
    r0 = spec.regions[0]
    deliver(spec, tmp, r0, D1.ds, bad=True)
    deliver(spec, tmp, spec.regions[1], D1.ds)
    blocked = run_interval(spec, D1).decision
    assert blocked is not None and not blocked.certified
    return spec, r0, blocked


def suite_file(spec: PipelineSpec, table: str = "transactions") -> Path:
    return spec.suites_dir() / f"{table}.json"


def messages(decision: Any) -> str:
    return "\n".join(r["message"] for r in decision.reasons)


def amounts(spec: PipelineSpec, region: str, at: str | None = None) -> pl.DataFrame:
    return read_certified(spec, "card_features", region, at=at).collect().sort("txn_id")


# --------------------------------------------------------------------------- 1. suite flip-flop
def test_a_suite_flip_flop_is_judged_under_the_current_suite(tmp_path: Path) -> None:
    spec = lake(tmp_path)
    deliver_all(spec, tmp_path, D1.ds)
    lenient = suite_file(spec).read_text()
    strict = json.loads(lenient)
    strict["expectations"].append(STRICT)
    suite_file(spec).write_text(json.dumps(strict))
    first = run_interval(spec, D1).decision
    assert first is not None and not first.certified and "amount" in messages(first)

    suite_file(spec).write_text(lenient)  # validated again under a lenient suite: it passes there
    for region in spec.regions:
        validate(spec, D1, region, layers=INPUT_LAYERS)
    suite_file(spec).write_text(json.dumps(strict))  # the strict suite restored

    decision = certify(spec, D1)
    assert not decision.certified, "certified data that fails the current suite"
    assert any(r["check_id"] == "rollup.validation" and "values_to_be_between[amount]" in r["message"]
               for r in decision.reasons), messages(decision)
    assert current_certified(spec) is None


def test_a_batch_under_a_suite_that_changed_since_does_not_count(tmp_path: Path) -> None:
    spec = lake(tmp_path)
    deliver_all(spec, tmp_path, D1.ds)
    assert run_interval(spec, D1).decision.certified  # type: ignore[union-attr]
    suite = json.loads(suite_file(spec).read_text())
    suite["expectations"].append(STRICT)
    suite_file(spec).write_text(json.dumps(suite))  # nobody validates under the new suite
    decision = certify(spec, D1)
    assert not decision.certified
    assert "not validated at version" in messages(decision) and "under the current suite" in messages(decision)


# --------------------------------------------------------------------------- 2. missing suite
def test_a_missing_suite_blocks_naming_the_file(tmp_path: Path) -> None:
    spec, good, r0, before = certified_day(tmp_path)
    deliver(spec, tmp_path, r0, D1.ds, bad=True)
    ingest(spec, D1, r0)  # written and profiled, never validated
    suite_file(spec).unlink()

    decision = certify(spec, D1)
    assert not decision.certified, "certified unvalidated rows because their suite was missing"
    assert any(r["check_id"] == "evidence.suite.transactions" and str(suite_file(spec)) in r["message"]
               for r in decision.reasons), messages(decision)
    assert amounts(spec, r0).equals(before)  # still the certified day, never the unvalidated rows

    res = cli("check", str(spec.path))
    assert res.exit_code == 2 and str(suite_file(spec)) in res.stderr and "does not exist" in res.stderr
    assert "Traceback" not in res.output
    res = cli("validate", str(spec.path), "--date", D1.ds)
    assert res.exit_code == 2 and str(suite_file(spec)) in res.stderr


# --------------------------------------------------------------------------- 3. lineage
def test_features_computed_from_other_inputs_block_naming_both_versions(tmp_path: Path) -> None:
    spec, good, r0, before = certified_day(tmp_path)
    path = tmp_path / "landing" / r0 / f"{D1.ds}.parquet"
    df = pl.read_parquet(path)
    df.with_columns(pl.col("card_id").shuffle(seed=3)).write_parquet(path)  # re-delivered, card ids shuffled
    ingest(spec, D1, r0)
    validate(spec, D1, r0, layers=INPUT_LAYERS)  # the inputs alone: the features are not recomputed

    decision = certify(spec, D1)
    assert not decision.certified, "certified new raw beside features computed from the old raw"
    raw_now = decision.generation.version(r0, "raw", "transactions")
    feat = decision.generation.version(r0, "features", "card_features")
    raw_then = good.generation.version(r0, "raw", "transactions")
    assert raw_now != raw_then
    assert (f"{r0}/features/card_features v{feat} was computed from raw/transactions v{raw_then}, the generation "
            f"holds raw/transactions v{raw_now}") in messages(decision), messages(decision)
    assert amounts(spec, r0).equals(before)
    # re-running the region binds the features to the new raw, and the day certifies
    again = run_interval(spec, D1).decision
    assert again is not None and again.certified, messages(again)
    assert again.bindings["inputs"][f"{r0}/features/card_features"]["raw/transactions"] == raw_now


def test_features_whose_lookback_was_rewritten_since_block(tmp_path: Path) -> None:
    spec = lake(tmp_path)
    deliver_all(spec, tmp_path, D1.ds, D2.ds)
    assert run_interval(spec, D1).decision.certified  # type: ignore[union-attr]
    assert run_interval(spec, D2).decision.certified  # type: ignore[union-attr]
    r0 = spec.regions[0]
    deliver(spec, tmp_path, r0, D1.ds, seed=99)  # the 1st re-delivered and re-run; the 2nd read the old 1st
    run_interval(spec, D1)
    decision = certify(spec, D2)
    assert not decision.certified
    assert f"read raw/transactions of {D1.key} as of" in messages(decision) and "stale" in messages(decision)


# --------------------------------------------------------------------------- 4. incomplete batches
def test_a_validation_batch_with_results_removed_does_not_count(tmp_path: Path) -> None:
    spec, r0, blocked = blocked_day(tmp_path)
    uri = spec.region_lockstep_uri(r0, REGION_RESULTS_TABLE.name)  # what the region's validation recorded
    dt = DeltaTable(uri)
    dt.delete("stage = 'validation' AND success = false")  # the failing rows of the batch, gone
    assert not pl.read_delta(uri).filter((pl.col("stage") == "validation") & ~pl.col("success")).height

    decision = certify(spec, D1)
    assert not decision.certified, "certified on a validation batch whose failing results were deleted"
    assert f"{spec.regions[0]}/raw/transactions: not validated at version" in messages(decision)
    assert "expectation results (missing" in messages(decision), messages(decision)


# --------------------------------------------------------------------------- 5, 6. operator decisions
def test_an_override_after_a_fix_does_not_reinstate_the_old_block(tmp_path: Path) -> None:
    spec, r0, blocked = blocked_day(tmp_path)
    deliver(spec, tmp_path, r0, D1.ds)  # fixed at the source, re-run, certified
    fixed = run_interval(spec, D1).decision
    assert fixed is not None and fixed.certified and fixed.generation_id != blocked.generation_id

    res = cli("override", str(spec.path), "--date", D1.ds, "--reason", "vendor said ok",
              "--generation", blocked.generation_id)
    assert res.exit_code == 2 and "older than a certification" in res.stderr and "--reinstate-older" in res.stderr
    assert current_certified(spec).generation_id == fixed.generation_id  # type: ignore[union-attr]
    raw = read_certified(spec, "transactions", r0).collect()
    assert raw["currency"].str.to_uppercase().equals(raw["currency"])  # still the fixed rows

    # asked for by name, it is done and says so
    ov = override(spec, D1, reason="vendor said ok", generation=blocked.generation_id, reinstate_older=True)
    assert ov.bindings["reviewed"]["reinstates_older"] and fixed.generation_id in ov.bindings["reviewed"]["note"]


def test_an_override_names_the_generation_reviewed(tmp_path: Path) -> None:
    spec, r0, g1 = blocked_day(tmp_path)  # the operator reviews G1 ...
    deliver(spec, tmp_path, r0, D1.ds, bad=True, seed=42)  # ... another version lands, never validated
    ingest(spec, D1, r0)
    g2 = certify(spec, D1)
    assert not g2.certified and g2.generation_id != g1.generation_id

    with pytest.raises(CertificationError, match="a newer decision intervened"):
        override(spec, D1, reason="reviewed G1", generation=g1.generation_id)
    with pytest.raises(CertificationError, match="no blocked generation"):
        override(spec, D1, reason="guess", generation="2026-01-01.0000000000")
    res = cli("override", str(spec.path), "--date", D1.ds, "--reason", "no generation named")
    assert res.exit_code == 2 and "--generation" in res.output
    assert current_certified(spec) is None
    ov = override(spec, D1, reason="reviewed G2", generation=g2.generation_id)
    assert ov.generation_id == g2.generation_id and ov.target == g2.decision_id
    assert ov.bindings["reviewed"]["blocked_digest"] == g2.digest


def test_a_rollback_names_a_generation_and_what_it_replaces(tmp_path: Path) -> None:
    spec = lake(tmp_path)
    deliver_all(spec, tmp_path, D1.ds, D2.ds)
    first = run_interval(spec, D1).decision
    second = run_interval(spec, D2).decision
    assert first and second and first.certified and second.certified
    with pytest.raises(CertificationError, match="names a generation, not an interval"):
        rollback(spec, D1.key, reason="which one?")
    with pytest.raises(CertificationError, match="a newer decision intervened"):
        rollback(spec, first.generation_id, reason="saw the 1st in force", replacing=first.generation_id,
                 scope="pipeline")
    rb = rollback(spec, first.generation_id, reason="bad 2nd", replacing=second.generation_id, scope="pipeline")
    assert rb.bindings["reviewed"]["revokes"] == [D2.key]
    with pytest.raises(CertificationError, match="nothing to roll back"):
        rollback(spec, first.generation_id, reason="again", scope="pipeline")


# --------------------------------------------------------------------------- 7. commit order
def _lockstep(*args: str, clock: str | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [LOCKSTEP, *args]
    if clock is not None:
        if shutil.which("faketime") is None:
            pytest.fail("faketime is not installed (apt-get install faketime)")
        cmd = ["faketime", "-f", clock, *cmd]
    env = {k: v for k, v in os.environ.items() if k != "LOCKSTEP_DEBUG"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)


def test_the_log_is_folded_in_commit_order_whatever_the_clocks(tmp_path: Path) -> None:
    spec = lake(tmp_path)
    deliver_all(spec, tmp_path, D1.ds, D2.ds)
    first = run_interval(spec, D1).decision
    assert first is not None and first.certified
    run_interval(spec, D2, certify=False)

    ahead = _lockstep("certify", str(spec.path), "--date", D2.ds, "--json", clock="+365d")
    assert ahead.returncode == 0, ahead.stderr
    skewed = decisions(spec)[-1]
    assert skewed.interval == D2.key and skewed.decided_at.year >= 2027  # its host's clock, recorded as such

    back = _lockstep("rollback", str(spec.path), "--to", first.generation_id, "--reason", "bad 2nd",
                     "--pipeline-wide", "--yes", "--json")
    assert back.returncode == 0, back.stderr
    assert current_certified(spec).generation_id == first.generation_id  # type: ignore[union-attr]
    assert D2.key not in active_certifications(spec)
    with pytest.raises(CertificationError, match="revoked"):
        read_certified(spec, "card_features", spec.regions[0], at=D2.key)

    # certified again by a host two days behind: newer in the log, so in force
    behind = _lockstep("certify", str(spec.path), "--date", D2.ds, "--json", clock="-2d")
    assert behind.returncode == 0, behind.stderr
    log = decisions(spec)
    assert log[-1].kind == "gate" and log[-1].decided_at < log[-2].decided_at  # the clock says otherwise
    assert [d.log_version for d in log] == sorted(d.log_version for d in log)  # type: ignore[type-var]
    assert current_certified(spec).interval == D2.key  # type: ignore[union-attr]
    assert read_certified(spec, "card_features", spec.regions[0]).collect()["ds"].unique().to_list() == [D2.ds]


def test_a_forged_log_version_makes_the_log_unreadable(tmp_path: Path) -> None:
    from deltalake import write_deltalake

    spec = lake(tmp_path, regions=1)
    deliver_all(spec, tmp_path, D1.ds)
    assert run_interval(spec, D1).decision.certified  # type: ignore[union-attr]
    uri = spec.lockstep_uri("certifications")
    row = pl.read_delta(uri).tail(1).with_columns(decision_id=pl.lit("forged"))  # a second row claiming its place
    write_deltalake(uri, row.to_arrow(), mode="append")
    with pytest.raises(CertificationError, match="decision log is inconsistent"):
        decisions(spec)


# --------------------------------------------------------------------------- 9. files changed behind Delta
def test_read_certified_refuses_a_file_changed_behind_delta(tmp_path: Path) -> None:
    from tests.test_integrity import file_of, forge_same_size

    spec = lake(tmp_path)
    deliver_all(spec, tmp_path, D1.ds)
    d = run_interval(spec, D1).decision
    assert d is not None and d.certified and d.bindings["files"]
    r0, r1 = spec.regions
    version = d.generation.version(r0, "raw", "transactions")
    assert version is not None
    uri = spec.table_uri(r0, "raw", "transactions")
    rel, path = file_of(uri, version, {"ds": D1.ds})
    size = path.stat().st_size
    forge_same_size(path, lambda f: f.with_columns(pl.col("amount") * 0 + 1))  # validated rows, replaced
    assert path.stat().st_size == size
    with pytest.raises(CertificationError) as e:
        read_certified(spec, "transactions", r0).collect()
    assert f"{r0}/raw/transactions" in str(e.value) and f"version {version}" in str(e.value) and rel in str(e.value)
    assert read_certified(spec, "transactions", r1).collect().height  # the other region's data is untouched

    pl.DataFrame({"x": [1]}).write_parquet(path)  # another size: refused, no pyo3 panic
    with pytest.raises(CertificationError, match=rel):
        read_certified(spec, "transactions", r0).collect()


# --------------------------------------------------------------------------- 8. intervals that have not happened
def test_a_certified_future_interval_never_becomes_the_one_in_force(tmp_path: Path) -> None:
    spec = lake(tmp_path, regions=1)
    deliver_all(spec, tmp_path, D1.ds)
    first = run_interval(spec, D1).decision
    assert first is not None and first.certified
    future = Interval.for_date("2099-01-01")
    deliver_all(spec, tmp_path, future.ds)
    with pytest.raises(Exception, match="has not closed yet"):
        run_interval(spec, future)
    ahead = run_interval(spec, future, allow_open=True).decision  # a demo may run it; it is certified ...
    assert ahead is not None and ahead.certified
    assert future.key in active_certifications(spec)
    # ... but what consumers read now is the newest interval that has closed
    assert current_certified(spec).generation_id == first.generation_id  # type: ignore[union-attr]
    assert read_certified(spec, "card_features", spec.regions[0]).collect()["ds"].unique().to_list() == [D1.ds]
    assert read_certified(spec, "card_features", spec.regions[0], at=future.key).collect().height  # named: served
