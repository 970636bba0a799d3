"""Validation rollup: validation's ``block`` results and quarantine ratios, per region.

Validation (GX suites) records its results with ``stage="validation"``; the newest result of
each (region, table, check) counts. A region with a failed ``block`` expectation blocks, and
so does a table whose quarantined share of the interval's rows exceeds the spec's
``validation.quarantine_cap``: ``quarantined / (kept + quarantined)``.
"""

from __future__ import annotations

import polars as pl

from pipelines.checks import CheckResult, latest_results
from pipelines.reconcile.context import Context


def _rows(lf: pl.LazyFrame | None) -> int:
    return 0 if lf is None else int(lf.select(pl.len()).collect().item())


def check_rollup(ctx: Context) -> list[CheckResult]:
    spec = ctx.spec
    validation = [r for r in latest_results(ctx.root, spec.name, ctx.interval.key, ctx.run_id, ctx.storage_options or None)
                  if r.stage == "validation"]
    results: list[CheckResult] = []
    cap = spec.validation.quarantine_cap
    for region in spec.regions:
        blocking = [r for r in validation if r.region == region and r.blocking]
        results.append(CheckResult(
            stage="reconcile", check_id="rollup.validation", check_type="rollup", region=region, table="*",
            policy="block", success=not blocking, observed=len(blocking), threshold=0,
            message=(f"{region}: {len(blocking)} blocking validation result(s): "
                     + ", ".join(sorted({f'{r.table}:{r.check_id}' for r in blocking}))) if blocking
            else f"{region}: no blocking validation result",
            details={"checks": [{"table": r.table, "check_id": r.check_id, "message": r.message} for r in blocking]},
        ))
        for table in spec.tables_in("raw", "features"):
            q = _rows(ctx.scan(region, table, layer="quarantine"))
            if q == 0:
                continue
            kept = _rows(ctx.scan(region, table))
            ratio = q / max(1, q + kept)
            results.append(CheckResult(
                stage="reconcile", check_id=f"rollup.quarantine.{table.name}", check_type="rollup", region=region,
                table=table.name, policy="block", success=ratio <= cap, observed=round(ratio, 6), threshold=cap,
                unexpected_count=q, element_count=q + kept,
                message=f"{region}/{table.path}: {q:,} of {q + kept:,} rows quarantined ({ratio:.2%}, cap {cap:.2%})",
            ))
    return results
