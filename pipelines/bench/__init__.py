"""Benchmarks behind ``lockstep bench``.

Every benchmark prints ratios against a reference measured in the same run (a plain polars
parquet round trip, one scan of the data, a peer such as DuckDB), from interleaved runs in
fresh processes (reference and subjects in turn, at least three times, min and median), and
peak RSS above the RSS after the phase's imports. Each area has a module with
``run(...) -> dict``; an area's ``figures`` are also gathered in the top-level ``figures``
list, each ``{name, value, unit, reference, ratio, goal, met}``.
"""

from __future__ import annotations

import importlib
from typing import Any

from rich.console import Console

from pipelines.errors import LockstepError

AREAS = ["core", "validation", "reconcile", "evidence", "integrity", "scoring"]


def run_benchmarks(*, rows: int, regions: int, only: list[str] | None = None, console: Console | None = None) -> dict[str, Any]:
    unknown = [a for a in only or [] if a not in AREAS]
    if unknown:  # named before anything runs; an area that fails to import is an error, never skipped
        raise LockstepError(f"--only: no benchmark area {', '.join(map(repr, unknown))} (areas: {', '.join(AREAS)})")
    results: dict[str, Any] = {}
    for area in only or AREAS:
        module = importlib.import_module(f"pipelines.bench.{area}")
        results[area] = module.run(rows=rows, regions=regions, console=console)
    results["figures"] = [
        {"area": area, **f} for area, res in list(results.items())
        if isinstance(res, dict) for f in res.get("figures", [])
    ]
    return results
