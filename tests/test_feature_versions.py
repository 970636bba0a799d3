"""Feature versions coexist: after a bump (v1 -> v2) is re-run and certified, a consumer pinned
to v1 keeps reading the v1 generation of each interval while others read v2; maintenance keeps
the pinned version's files until the pin is retired. Real Delta, real runs."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from pipelines.certify import decisions, read_certified
from pipelines.errors import CertificationError
from pipelines.maintain import maintain
from pipelines.runner import run_interval
from pipelines.spec import Interval, PipelineSpec, parse_spec
from tests.conftest import REPO, small_spec_data

DAYS = ("2026-01-06", "2026-01-07")
NOW = datetime(2026, 1, 8, tzinfo=UTC)


def versioned(version: str, pins: dict[str, str] | None) -> PipelineSpec:
    data = small_spec_data(2, 300)
    data["features"] = [{**f, "version": version} if f["output"] == "card_features" else f for f in data["features"]]
    data["consumers"] = [{"name": "trained_on_v1", "tables": ["card_features"], "feature_versions": pins or {}},
                         {"name": "follows_latest", "tables": ["card_features"]}]
    data["maintenance"] = {"rollback_window": "0s", "min_file_age": "0s"}
    return parse_spec(data, "versions").with_path(REPO / "dags" / "fraud_features.yaml")


def versions_read(spec: PipelineSpec, day: str, consumer: str, root: str) -> set[str]:
    frame = read_certified(spec, "card_features", spec.regions[0], at=day, consumer=consumer, root=root, now=NOW)
    return set(frame.select(pl.col("feature_version").cast(pl.String)).collect()["feature_version"])


def test_a_pinned_consumer_keeps_reading_v1_after_v2_is_certified(root: str, tmp_path: Path) -> None:
    v1 = versioned("1", {"card_features": "1"})
    for day in DAYS:
        assert run_interval(v1, Interval.for_date(day), root=root).decision.certified  # type: ignore[union-attr]

    v2 = versioned("2", {"card_features": "1"})
    for day in DAYS:  # the bump, backfilled: each interval recomputed and certified under v2
        run = run_interval(v2, Interval.for_date(day), root=root)
        assert run.decision is not None and run.decision.certified, run.decision and run.decision.reasons
    assert [d.interval for d in decisions(v2, root=root)] == [*DAYS, *DAYS]

    for day in DAYS:
        assert versions_read(v2, day, "follows_latest", root) == {"2"}
        assert versions_read(v2, day, "trained_on_v1", root) == {"1"}  # the v1 generation, still certified
        a = read_certified(v2, "card_features", v2.regions[0], at=day, consumer="trained_on_v1", root=root,
                           now=NOW).collect()
        b = read_certified(v2, "card_features", v2.regions[0], at=day, root=root).collect()
        assert sorted(a["card_id"]) == sorted(b["card_id"]) and set(a["ds"]) == {day}

    # maintenance keeps v1 while a consumer pins it (with a newer day certified, v1's versions lie
    # outside the rollback window: only the pin protects them) ...
    assert run_interval(v2, Interval.for_date("2026-01-08"), root=root).decision.certified  # type: ignore[union-attr]
    maintain(v2, root=root)
    assert versions_read(v2, DAYS[0], "trained_on_v1", root) == {"1"}
    # ... and may reclaim it once the pin is retired; a consumer pinned to an unknown version fails clearly
    retired = versioned("2", {"card_features": "3"})
    with pytest.raises(CertificationError, match="pinned to feature version '3', and no certified generation of 2026-01-07"):
        read_certified(retired, "card_features", retired.regions[0], at=DAYS[1], consumer="trained_on_v1",
                       root=root, now=NOW)
    maintain(versioned("2", None), root=root)
    with pytest.raises(CertificationError, match="removed|missing|feature version"):
        versions_read(v2, DAYS[0], "trained_on_v1", root)
    assert versions_read(v2, DAYS[0], "follows_latest", root) == {"2"}
