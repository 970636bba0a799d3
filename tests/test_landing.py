"""The landing trigger's core: which intervals have landed, and one run id per interval and
delivery, whatever the notifications repeat (real files, real runs on Delta)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipelines.certify import decisions
from pipelines.errors import SourceError, SpecError
from pipelines.landing import named_intervals, ready
from pipelines.runner import run_interval
from pipelines.spec import Interval, PipelineSpec, parse_spec
from tests.conftest import REPO
from tests.test_late_data import deliver, hourly_spec


def landing_spec(landing: Path, **airflow: object) -> PipelineSpec:
    data = hourly_spec(landing).model_dump(mode="json")
    data["airflow"].update(trigger="landing", **airflow)
    return parse_spec(data, "landing").with_path(REPO / "dags" / "fraud_features.yaml")


def hour(h: int) -> Interval:
    return Interval.for_date("2026-01-01", "hour", h)


def test_an_interval_lands_when_every_region_delivered_and_it_closed_plus_the_allowance(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    spec = landing_spec(landing)
    a, b = spec.regions
    deliver(landing, spec, a, hour(4))
    closed = hour(4).end + spec.late_allowance
    assert ready(spec, now=closed, intervals=[hour(4).key]) == []  # b has not delivered
    deliver(landing, spec, b, hour(4))
    assert ready(spec, now=closed - timedelta(seconds=1), intervals=[hour(4).key]) == []  # allowance not over
    [landed] = ready(spec, now=closed, intervals=[hour(4).key])
    assert landed.interval == hour(4) and landed.run_id.startswith("landing__2026-01-01T04__")

    # without a named interval: the lookback finds it, and nothing older or still open
    deliver(landing, spec, a, hour(5))
    deliver(landing, spec, b, hour(5))
    found = ready(spec, now=hour(5).end + spec.late_allowance)
    assert [x.interval.key for x in found] == [hour(4).key, hour(5).key]
    assert ready(spec, now=hour(5).end + spec.late_allowance + timedelta(days=2)) == []  # out of the lookback
    assert [x.interval.key for x in ready(spec, now=hour(5).end + timedelta(days=2), intervals=[hour(5).key])] \
        == [hour(5).key]  # named: found whatever the lookback


def test_duplicate_notifications_name_the_same_runs_and_a_redelivery_a_new_one(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    spec = landing_spec(landing)
    for h in (4, 5):
        for region in spec.regions:
            deliver(landing, spec, region, hour(h))
    now = hour(5).end + spec.late_allowance
    once = ready(spec, now=now, intervals=named_intervals([{"intervals": [hour(4).key, hour(5).key]}]))
    many = ready(spec, now=now, intervals=named_intervals([{"intervals": [hour(4).key, hour(5).key]}] * 10_000))
    assert [x.run_id for x in many] == [x.run_id for x in once] and len(once) == 2

    # the upstream delivers hour 5 of one region again (late rows): hour 5 gets a new run id, hour 4 keeps its
    path = landing / spec.regions[0] / f"{hour(5).ds}T05.parquet"
    st = path.stat()
    deliver(landing, spec, spec.regions[0], hour(5))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    again = {x.interval.key: x.run_id for x in ready(spec, now=now)}
    before = {x.interval.key: x.run_id for x in once}
    assert again[hour(4).key] == before[hour(4).key] and again[hour(5).key] != before[hour(5).key]


def test_each_landed_run_certifies_its_interval_once(tmp_path: Path, root: str) -> None:
    """What the landing DAG does, without Airflow: run each distinct run id once."""
    landing = tmp_path / "landing"
    spec = landing_spec(landing)
    for region in spec.regions:
        deliver(landing, spec, region, hour(4))
    now = hour(4).end + spec.late_allowance
    started: set[str] = set()
    for _ in range(3):  # three notifications: the same run id each time
        for landed in ready(spec, now=now, intervals=[hour(4).key]):
            if landed.run_id not in started:
                started.add(landed.run_id)
                run = run_interval(spec, landed.interval, root=root)
                assert run.decision is not None and run.decision.certified, run.decision and run.decision.reasons
    assert len(started) == 1
    assert [d.interval for d in decisions(spec, root=root)] == [hour(4).key]


def test_bad_notifications_and_deliveries_get_one_clear_error(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    spec = landing_spec(landing)
    with pytest.raises(SpecError, match="'intervals' a list of keys"):
        named_intervals([{"intervals": "2026-01-01T04"}])
    with pytest.raises(SpecError, match="landing notification of fraud_features: 'yesterday'"):
        ready(spec, now=datetime(2026, 1, 2, tzinfo=UTC), intervals=["yesterday"])
    (landing / spec.regions[0] / "2026-01-01T04.parquet").mkdir(parents=True)  # a folder where a file belongs
    with pytest.raises(SourceError, match="expected a file, found a folder"):
        ready(spec, now=datetime(2026, 1, 2, tzinfo=UTC), intervals=[hour(4).key])


def test_the_landing_trigger_needs_a_file_source() -> None:
    from tests.conftest import small_spec_data

    data = small_spec_data(2, 100)
    data["airflow"]["trigger"] = "landing"
    with pytest.raises(SpecError, match="airflow.trigger: landing needs a file source"):
        parse_spec(data, "no-files")
