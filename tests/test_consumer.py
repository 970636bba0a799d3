"""Consumers: max_staleness against the consumer's logical date, pinned feature versions,
and the lookback_coverage check."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from pipelines.airflow.consumer import read_for_consumer
from pipelines.certify import read_certified
from pipelines.errors import CertificationError
from pipelines.features.coverage import lookback_coverage
from pipelines.runner import run_interval
from pipelines.spec import Interval, load_spec, parse_spec
from pipelines.templates import init_project


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    made = init_project(tmp_path_factory.mktemp("c") / "shop", template="card_spend", name="shop")
    spec = load_spec(made.spec)
    for ds in ("2026-01-06", "2026-01-07"):
        assert run_interval(spec, Interval.for_date(ds)).decision.certified  # type: ignore[union-attr]
    return made.spec


def test_staleness_is_measured_against_the_consumers_logical_date(project: Path) -> None:
    spec = load_spec(project)  # consumer shop_scoring: max_staleness 2d; certified up to 2026-01-07
    on_time = {"logical_date": datetime(2026, 1, 9, 12, tzinfo=UTC)}
    assert read_for_consumer(spec, "shop_scoring", "card_daily", "eu-west", on_time).collect().height > 0
    late = {"logical_date": datetime(2026, 1, 11, tzinfo=UTC)}
    with pytest.raises(CertificationError, match="over the staleness budget 2 days.*shop_scoring"):
        read_for_consumer(spec, "shop_scoring", "card_daily", "eu-west", late)
    with pytest.raises(CertificationError, match="staleness"):  # no context: now, long after 2026
        read_certified(spec, "card_daily", "eu-west", consumer="shop_scoring")
    with pytest.raises(CertificationError, match="no consumer named"):
        read_certified(spec, "card_daily", "eu-west", consumer="nobody")


def test_asset_event_picks_the_generation(project: Path) -> None:
    spec = load_spec(project)
    from pipelines.certify import decisions

    first = next(d for d in decisions(spec) if d.interval == "2026-01-06")
    event = SimpleNamespace(extra={"generation_id": first.generation_id}, timestamp=datetime(2026, 1, 7, tzinfo=UTC))
    ctx = {"logical_date": datetime(2026, 1, 7, tzinfo=UTC), "triggering_asset_events": {"a": [event]}}
    frame = read_for_consumer(spec, "shop_scoring", "card_daily", "eu-west", ctx).collect()
    assert set(frame["ds"]) == {"2026-01-06"}


def test_pinned_feature_version(project: Path) -> None:
    data = load_spec(project).model_dump(mode="json")
    data["consumers"][0]["feature_versions"] = {"card_daily": "2"}
    spec = parse_spec(data, str(project)).with_path(project)
    with pytest.raises(CertificationError, match="pinned to feature version '2'.*\\['1'\\]"):
        read_certified(spec, "card_daily", "eu-west", consumer="shop_scoring", now=datetime(2026, 1, 8, tzinfo=UTC))


def test_lookback_coverage_names_the_missing_days(project: Path) -> None:
    spec = load_spec(project)
    fs = spec.features[0]
    r = lookback_coverage(spec, fs, Interval.for_date("2026-01-07"), "eu-west")
    assert not r.success and r.policy == "warn" and r.check_type == "lookback_coverage"
    assert r.details["missing"]["transactions"] == [f"2025-12-{d}" for d in range(31, 32)] + [
        f"2026-01-0{d}" for d in range(1, 6)]
    assert "earliest available 2026-01-06" in r.message
    data = spec.model_dump(mode="json")
    data["features"][0]["lookback"] = "1d"
    data["features"][0]["lookback_coverage"] = "block"
    short = parse_spec(data, str(project)).with_path(project)
    ok = lookback_coverage(short, short.features[0], Interval.for_date("2026-01-07"), "eu-west")
    assert ok.success and ok.policy == "block"
