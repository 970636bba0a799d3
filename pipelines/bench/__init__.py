"""Benchmarks behind ``lockstep bench``.

Every benchmark prints ratios against a reference measured in the same run (a plain polars
parquet round trip, one scan of the data, the plain library call), so its figures survive a
noisy machine, and reports peak RSS. Each area has a module with ``run(...) -> dict``; this
package only dispatches to them.
"""

from __future__ import annotations

import importlib
from typing import Any

from rich.console import Console

AREAS = ["core", "validation", "reconcile", "evidence"]


def run_benchmarks(*, rows: int, regions: int, only: list[str] | None = None, console: Console | None = None) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for area in only or AREAS:
        try:
            module = importlib.import_module(f"pipelines.bench.{area}")
        except ModuleNotFoundError as exc:
            if exc.name != f"pipelines.bench.{area}":
                raise
            continue
        results[area] = module.run(rows=rows, regions=regions, console=console)
    return results
