"""Late data in an hourly pipeline, on real Delta: rows that arrive after their interval was
certified re-version that region's interval and re-certify that interval only; every other
table version and every other interval stays as it was, and the old generation's versions
stay readable."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from pipelines.certify import active_certifications, decisions, read_certified
from pipelines.runner import run_interval
from pipelines.sources.synthetic import for_interval
from pipelines.spec import Interval, PipelineSpec, load_spec, parse_spec, partition_columns
from pipelines.storage import partition_files, read_table, table_uri, table_version
from tests.airflow.test_dag_run import airflow_db, run_dag  # noqa: F401  (a fixture)
from tests.conftest import REPO, small_spec_data

HOURS = [4, 5, 6]
LATE_HOUR = 5


def hourly_spec(landing: Path, regions: int = 2, rows: int = 4800) -> PipelineSpec:
    data = small_spec_data(regions, rows)
    data["granularity"], data["schedule"] = "hour", "@hourly"
    data["sources"]["transactions"] = {
        "kind": "parquet", "path": str(landing / "{region}" / "{ds}T{hour}.parquet"), "late_allowance": "10m",
    }
    for t in data["tables"]:
        t["partition_by"] = partition_columns("hour")
    data["reconcile"]["drift"] = []  # a few hundred rows an hour: nothing for drift to judge
    return parse_spec(data, "late-data").with_path(REPO / "dags" / "fraud_features.yaml")


def deliver(landing: Path, spec: PipelineSpec, region: str, iv: Interval, *, hold_back: int = 0) -> pl.DataFrame:
    """Land one region's hour as a file; ``hold_back`` rows of it are not delivered yet."""
    frame = for_interval("transactions", region, iv.start, iv.end, regions=spec.regions, rows=4800, merchants=200)
    path = landing / region / f"{iv.ds}T{iv.hour:02d}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    delivered = frame.head(frame.height - hold_back) if hold_back else frame
    delivered.write_parquet(path)
    return frame


def versions(spec: PipelineSpec, root: str) -> dict[tuple[str, str], int | None]:
    return {(r, t.path): table_version(table_uri(root, spec.name, r, t.layer, t.name))
            for r in spec.regions for t in spec.tables}


def files(spec: PipelineSpec, root: str) -> dict[tuple[str, str, str], frozenset[str]]:
    out = {}
    for r in spec.regions:
        for t in spec.tables:
            for h in HOURS:
                iv = Interval.for_date("2026-01-01", "hour", h)
                out[(r, t.path, iv.key)] = partition_files(table_uri(root, spec.name, r, t.layer, t.name),
                                                           iv.partition(t.partition_by))
    return out


def test_late_rows_recertify_exactly_one_region_interval(root: str, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    spec = hourly_spec(landing)
    late_region, other = spec.regions
    assert spec.late_allowance.total_seconds() == 600
    full: dict[str, Any] = {}
    for h in HOURS:
        iv = Interval.for_date("2026-01-01", "hour", h)
        for region in spec.regions:
            held = 40 if (region, h) == (late_region, LATE_HOUR) else 0
            frame = deliver(landing, spec, region, iv, hold_back=held)
            full[f"{region}/{iv.key}"] = frame
        run = run_interval(spec, iv, root=root)
        assert run.decision is not None and run.decision.certified, run.decision and run.decision.reasons

    late_iv = Interval.for_date("2026-01-01", "hour", LATE_HOUR)
    before_versions, before_files = versions(spec, root), files(spec, root)
    before_log = decisions(spec, root=root)
    old = active_certifications(spec, root=root)[late_iv.key]
    first_rows = read_certified(spec, "card_features", late_region, at=late_iv.key, root=root).collect()

    # the late rows arrive (the upstream re-delivers the hour), after the interval was certified
    deliver(landing, spec, late_region, late_iv)
    rerun = run_interval(spec, late_iv, root=root)
    assert rerun.decision is not None and rerun.decision.certified, rerun.decision.reasons

    after_versions, after_files = versions(spec, root), files(spec, root)
    moved_tables = {k for k in before_versions if before_versions[k] != after_versions[k]}
    assert moved_tables and {r for r, _ in moved_tables} == {late_region}, moved_tables
    assert all(v == before_versions[(other, p)] for (r, p), v in after_versions.items() if r == other)
    moved_partitions = {k for k in before_files if before_files[k] != after_files[k]}
    assert {(r, iv) for r, _, iv in moved_partitions} == {(late_region, late_iv.key)}, moved_partitions
    assert ("raw/merchant_risk" not in {p for _, p, _ in moved_partitions}), "unchanged reference data not rewritten"

    # one new decision, about the late interval only; the other intervals keep theirs
    after_log = decisions(spec, root=root)
    new = after_log[len(before_log):]
    assert [d.interval for d in new] == [late_iv.key] and new[0].certified
    active = active_certifications(spec, root=root)
    assert active[late_iv.key].generation_id != old.generation_id
    for h in (4, 6):
        key = Interval.for_date("2026-01-01", "hour", h).key
        assert active[key].decision_id == next(d for d in before_log if d.interval == key and d.certified).decision_id
    changed = {m for m, v in new[0].generation.members.items() if old.generation.members.get(m) != v}
    assert changed and all(m.startswith(f"{late_region}/") for m in changed), changed

    # the certified hour now holds every row, the late ones included, and nothing else
    now_rows = read_certified(spec, "card_features", late_region, at=late_iv.key, root=root).collect()
    assert sorted(now_rows["txn_id"]) == sorted(full[f"{late_region}/{late_iv.key}"]["txn_id"])
    assert now_rows.height == first_rows.height + 40
    assert now_rows["event_time"].is_between(late_iv.start, late_iv.end, closed="left").all()

    # the old generation stays readable: its versions still hold what was first certified
    fv = old.generation.version(late_region, "features", "card_features")
    assert fv is not None
    then = read_table(table_uri(root, spec.name, late_region, "features", "card_features"), version=fv,
                      partition=late_iv.partition(spec.table("card_features").partition_by)).collect()
    assert sorted(then["txn_id"]) == sorted(first_rows["txn_id"])

    # hour 6 was computed before the late rows came: not rewritten by the late-data run
    h6 = Interval.for_date("2026-01-01", "hour", 6)
    feats = read_table(table_uri(root, spec.name, late_region, "features", "card_features")).collect()
    assert feats["txn_id"].is_unique().all(), "no key in two hour partitions"
    assert set(feats.filter(pl.col("hour") == "06")["txn_id"]) == set(full[f"{late_region}/{h6.key}"]["txn_id"])

    # the same late delivery again: nothing moves, no new table version
    again = run_interval(spec, late_iv, root=root)
    assert all(ref.skipped for r in again.regions for ref in r.tables)
    assert versions(spec, root) == after_versions


def test_processing_time_is_close_plus_allowance(tmp_path: Path) -> None:
    spec = hourly_spec(tmp_path)
    iv = Interval.for_date("2026-01-01", "hour", 5)
    assert iv.end + spec.late_allowance == datetime(2026, 1, 1, 6, 10, tzinfo=UTC)


@pytest.mark.slow
@pytest.mark.usefixtures("airflow_db")
def test_hourly_dag_waits_the_allowance_then_certifies_the_hour(tmp_path: Path) -> None:
    """The generated DAG of an hourly spec with a late allowance, through Airflow's dag.test():
    the wait_for_late_data sensor ahead of the regions, then the hour that closed certified."""
    import yaml

    data = small_spec_data(2, 4800, name="af_hourly")
    data["granularity"], data["schedule"] = "hour", "@hourly"
    data["storage"] = {"root": str(tmp_path / "lake")}
    data["sources"]["transactions"]["late_allowance"] = "10m"
    data["airflow"]["retries"] = 0
    data["validation"]["enabled"] = False
    for t in data["tables"]:
        t.pop("partition_by")  # the granularity's: ds, hour
    spec_path = tmp_path / "af_hourly.yaml"
    spec_path.write_text(yaml.safe_dump(data))
    # a manual run at 06:00 processes the hour that closed then: 05:00-06:00
    dr = run_dag(spec_path, datetime(2026, 1, 1, 6, tzinfo=UTC))
    assert dr.state == "success"
    tis = {ti.task_id: ti.state for ti in dr.get_task_instances()}
    assert tis["wait_for_late_data"] == "success"
    spec = load_spec(spec_path)
    active = active_certifications(spec)
    assert sorted(active) == ["2026-01-01T05"]
    feats = read_certified(spec, "card_features", spec.regions[0]).collect()
    assert feats.height > 0 and set(feats["hour"]) == {"05"}
    assert feats["event_time"].dt.hour().unique().to_list() == [5]
