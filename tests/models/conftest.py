"""Helpers of the model-release tests: the flagship at 15-minute intervals, small."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from pipelines.spec import PipelineSpec, parse_spec
from tests.conftest import REPO, small_spec_data

#: rows per region and 15-minute interval (the transactions suite wants at least 100)
QUARTER_ROWS = 150


def quarter_data(regions: int, *, models: dict[str, Any], faults: list[dict[str, Any]] | None = None,
                 **overrides: Any) -> dict[str, Any]:
    """The flagship at 15-minute intervals, ``QUARTER_ROWS`` rows per region and interval,
    without Data Docs (rendering them is most of a small interval's cost; nothing here reads them)."""
    data = small_spec_data(regions, QUARTER_ROWS * 96, models=models, **overrides)
    data["validation"]["data_docs"] = False
    data.update(granularity="15m", schedule="*/15 * * * *")
    data.pop("consumers", None)
    for t in data["tables"]:
        t.pop("partition_by", None)  # the granularity's: ds, hour, minute
    if faults:
        data["sources"]["transactions"]["faults"] = [f for f in faults if f["kind"] != "stale_reference"]
        data["sources"]["merchant_risk"]["faults"] = [f for f in faults if f["kind"] == "stale_reference"]
    return data


def quarter_spec(regions: int, *, models: dict[str, Any], faults: list[dict[str, Any]] | None = None,
                 **overrides: Any) -> PipelineSpec:
    return parse_spec(quarter_data(regions, models=models, faults=faults, **overrides), "test-spec").with_path(
        REPO / "dags" / "fraud_features.yaml")


def quarters(spec: PipelineSpec, n: int, start: str = "2026-01-01T00:00") -> list[str]:
    """The keys of ``n`` consecutive intervals from ``start``."""
    first = spec.interval_at(start)
    return [spec.interval_at(first.start + k * spec.interval_length).key for k in range(n)]


def write_spec(data: dict[str, Any], path: Path) -> Path:
    """The spec as a YAML file (what the CLI is given)."""
    path.write_text(yaml.safe_dump(data))
    return path
