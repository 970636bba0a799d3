"""Each check's pass and fail path on small hand-built tables with known answers."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from pipelines.certify import gate
from pipelines.control.results import CheckResult, record_results
from pipelines.reconcile import run_checks
from pipelines.runner import ingest, run_interval, transform
from pipelines.spec import Interval
from pipelines.storage import read_table, table_uri, table_version, write_interval
from tests.conftest import make_spec
from tests.reconcile.conftest import DAY, REGIONS, feats_frame, put, ref_frame, tiny_spec

DRIFT = {"drift": [{"table": "feats", "columns": {"amount": {"psi": 0.2, "ks": 0.1}, "count": {"psi": 0.2, "ks": 0.1}}}]}


def of(results: list[CheckResult], check_type: str) -> dict[str, CheckResult]:
    return {f"{r.region}:{r.check_id}": r for r in results if r.check_type == check_type}


def fill(spec, root: str, shift: dict[str, float] | None = None, interval: Interval = DAY, **kw) -> None:  # type: ignore[no-untyped-def]
    for r in REGIONS:
        put(spec, root, r, "reference", "ref", ref_frame(), interval)
        put(spec, root, r, "features", "feats", feats_frame(r, shift=(shift or {}).get(r, 0.0), interval=interval, **kw), interval)


# --------------------------------------------------------------------------- drift
def test_drift_passes_on_same_distributions(root: str) -> None:
    spec = tiny_spec(DRIFT)
    fill(spec, root)
    res = of(run_checks(spec, DAY, root=root), "drift")
    assert len(res) == 6 and all(r.success for r in res.values()), [r.message for r in res.values() if not r.success]


def test_drift_blocks_the_shifted_region_vs_pooled(root: str) -> None:
    spec = tiny_spec(DRIFT)
    fill(spec, root, shift={"r3": 1.0})
    res = of(run_checks(spec, DAY, root=root), "drift")
    assert not res["r3:drift.feats.amount"].success and res["r3:drift.feats.amount"].blocking
    assert res["r1:drift.feats.amount"].success and res["r3:drift.feats.count"].success
    psi = res["r3:drift.feats.amount"].observed["other regions"]["psi"]
    assert psi > 0.5


def test_drift_against_own_certified_window(root: str) -> None:
    spec = tiny_spec(DRIFT)
    fill(spec, root)
    day1 = run_checks(spec, DAY, root=root, run_id="d1")
    assert gate(spec, DAY, day1, root=root, run_id="d1").certified
    day2 = Interval.for_date("2026-01-02")
    fill(spec, root, shift={r: 1.0 for r in REGIONS}, interval=day2, seed=2)  # every region moves together
    res = of(run_checks(spec, day2, root=root), "drift")
    amount = res["r1:drift.feats.amount"]
    assert not amount.success
    comps = {c["against"]: c for c in amount.details["comparisons"]}
    assert not comps["other regions"]["psi_fail"]  # the regions agree with each other...
    assert comps["own window (1 certified)"]["psi_fail"]  # ...but not with their own past
    assert amount.details["window"] == ["2026-01-01"]


def test_ks_from_bins_is_close_to_exact() -> None:
    import numpy as np
    from scipy.stats import ks_2samp

    from pipelines.reconcile.drift import binned, ks

    rng = np.random.default_rng(5)
    a, b = rng.lognormal(3, 1, 50_000), rng.lognormal(3.05, 1, 80_000)
    c = binned([a, b])
    assert abs(ks(c[0], c[1]) - ks_2samp(a, b).statistic) < 1e-3
    ia, ib = rng.poisson(3, 5000).astype(float), rng.poisson(3.2, 7000).astype(float)
    c = binned([ia, ib])
    assert abs(ks(c[0], c[1]) - ks_2samp(ia, ib).statistic) < 1e-12  # ties are exact


# --------------------------------------------------------------------------- freshness
def test_freshness_pass_and_fail(root: str) -> None:
    spec = tiny_spec({"freshness": {"table": "feats", "max_skew": "2h", "max_lag": "6h"}})
    fill(spec, root)
    res = of(run_checks(spec, DAY, root=root), "freshness")
    assert all(r.success for r in res.values())
    late = feats_frame("r2").filter(pl.col("ts") < DAY.start.replace(hour=15))  # r2 stops at 15:00
    put(spec, root, "r2", "features", "feats", late)
    put(spec, root, "r3", "features", "feats", feats_frame("r3").clear())  # nothing
    res = of(run_checks(spec, DAY, root=root), "freshness")
    assert res["r1:freshness.feats"].success
    assert not res["r2:freshness.feats"].success and "behind the freshest" in res["r2:freshness.feats"].message
    assert not res["r3:freshness.feats"].success and "no events" in res["r3:freshness.feats"].message


# --------------------------------------------------------------------------- schema
def test_schema_pass_and_fail(root: str) -> None:
    spec = tiny_spec({})
    fill(spec, root)
    res = of(run_checks(spec, DAY, root=root), "schema")
    assert res and all(r.success for r in res.values())
    put(spec, root, "r1", "features", "feats", feats_frame("r1").with_columns(pl.col("count").cast(pl.String).alias("extra")))
    res = of(run_checks(spec, DAY, root=root), "schema")
    bad = res["r1:schema.feats"]
    assert not bad.success and "extra column extra" in bad.message
    assert res["r2:schema.feats"].success


# --------------------------------------------------------------------------- rollup
def test_rollup_validation_block_and_quarantine_cap(root: str, tmp_path: Path) -> None:
    from pipelines.validation.suites import load_suite

    (tmp_path / "feats.json").write_text(json.dumps({"name": "feats", "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "amount"},
         "meta": {"lockstep": {"policy": "block"}}}]}))
    base = tiny_spec({})
    tables = [t.model_dump() for t in base.tables]
    tables[0]["validated"] = False  # the reference table has no suite, and says so
    spec = tiny_spec({}, tables=tables, validation={"quarantine_cap": 0.05, "suites_dir": str(tmp_path)})
    suite = load_suite(tmp_path / "feats.json", known_types={"expect_column_values_to_not_be_null"})
    check_id = f"feats.{suite.expectations[0].check_id}"
    fill(spec, root)
    res = of(run_checks(spec, DAY, root=root), "rollup")
    assert all(r.success for r in res.values())
    v2 = table_version(table_uri(root, spec.name, "r2", "features", "feats"))

    def failed(version: int | None, batch: str, sha: str = suite.sha) -> list[CheckResult]:
        return [
            CheckResult(stage="validation", check_id=check_id, check_type="expect_column_values_to_not_be_null",
                        region="r2", table="features/feats", policy="block", success=False, message="12 nulls",
                        table_version=version, batch=batch, suite_sha=sha),
            CheckResult(stage="validation", check_id="feats.suite", check_type="suite_run", region="r2",
                        table="features/feats", policy="warn", success=True, table_version=version, batch=batch,
                        suite_sha=sha, observed=1),
        ]

    record_results(root, spec.name, DAY.key, "v-other", failed(v2, "other-suite", sha="0123456789abcdef"))
    res = of(run_checks(spec, DAY, root=root), "rollup")
    assert res["r2:rollup.validation"].success  # a result under another suite is no evidence here
    record_results(root, spec.name, DAY.key, "v0", failed(None if v2 is None else v2 + 7, "other-version"))
    res = of(run_checks(spec, DAY, root=root), "rollup")
    assert res["r2:rollup.validation"].success  # a result about another version is no evidence here
    record_results(root, spec.name, DAY.key, "v1", failed(v2, "b1"))
    # r3's features were produced by quarantine: 200 of 2,000 rows moved aside (10% > 5%)
    q = feats_frame("r3").head(200)
    q_ref = put(spec, root, "r3", "quarantine", "feats", q)
    from pipelines.control.evidence import publish_write

    kept = feats_frame("r3").slice(200)
    ref = write_interval(table_uri(root, spec.name, "r3", "features", "feats"), kept, partition={"ds": DAY.ds}, app_id="k")
    publish_write(spec, "r3", spec.table("feats"), "features", DAY, kept, ref, root=root,
                  quarantine={"version": q_ref.version, "rows": 200, "totals": {}, "from_version": ref.version - 1})
    res = of(run_checks(spec, DAY, root=root), "rollup")
    assert not res["r2:rollup.validation"].success and check_id in res["r2:rollup.validation"].message
    assert res["r1:rollup.validation"].success
    qr = res["r3:rollup.quarantine.feats"]
    assert not qr.success and qr.observed == 0.1


# --------------------------------------------------------------------------- control totals
def test_control_totals_pass_then_fail_on_lost_rows_and_control_file(root: str, tmp_path: Path) -> None:
    control = tmp_path / "control-{ds}.json"
    spec = make_spec(regions=2, rows=300)
    data = spec.model_dump(mode="json")
    data["reconcile"] = {"control_totals": {"columns": ["amount"], "global_control": str(control)},
                         "schema_parity": {"enabled": False}}
    from pipelines.spec import parse_spec

    spec = parse_spec(data, "t")
    for r in spec.regions:
        ingest(spec, DAY, r, root=root)
        transform(spec, DAY, r, root=root)
    raw = {r: read_table(table_uri(root, spec.name, r, "raw", "transactions")).collect() for r in spec.regions}
    rows = [{"region": r, "rows": df.height, "amount": float(df["amount"].sum())} for r, df in raw.items()]
    Path(str(control).format(ds=DAY.ds)).write_text(json.dumps({"regions": rows}))
    res = of(run_checks(spec, DAY, root=root), "control_totals")
    assert res and all(r.success for r in res.values()), [r.message for r in res.values() if not r.success]

    r0 = spec.regions[0]
    feats_uri = table_uri(root, spec.name, r0, "features", "card_features")
    lost = read_table(feats_uri, partition={"ds": DAY.ds}).collect().slice(5)  # 5 feature rows lost
    put(spec, root, r0, "features", "card_features", lost)
    rows[1]["rows"] += 10  # the control file says region 2 sent 10 more rows
    Path(str(control).format(ds=DAY.ds)).write_text(json.dumps({"regions": rows}))
    res = of(run_checks(spec, DAY, root=root), "control_totals")
    feat = res[f"{r0}:totals.card_features.raw_features"]
    assert not feat.success and feat.unexpected_count == 5
    assert res[f"{r0}:totals.transactions.source_raw"].success
    glob = res[f"{spec.regions[1]}:totals.transactions.global_control"]
    assert not glob.success and "control file says" in glob.message
    assert not res["*:totals.transactions.global_control.sum"].success


def test_a_check_that_cannot_run_blocks(root: str, tmp_path: Path) -> None:
    spec = make_spec(regions=1, rows=100)
    data = spec.model_dump(mode="json")
    (tmp_path / "bad.json").write_text('{"regions": [{"x": 1}]}')  # no region, no rows
    data["reconcile"]["control_totals"]["global_control"] = str(tmp_path / "bad.json")
    from pipelines.spec import parse_spec

    spec = parse_spec(data, "t")
    run = run_interval(spec, DAY, root=root)
    assert run.decision is not None and not run.decision.certified
    assert any("could not run" in r["message"] for r in run.decision.reasons)
