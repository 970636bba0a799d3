"""Freshness skew: each region's newest event time must be close to the others' and to the
interval's end.

Decided from profiles (each holds its version's newest event time). For the spec's table
(``event_time`` column), per region: ``lag = interval end - newest``
must stay within ``max_lag``, and ``skew = newest of all regions - newest`` within
``max_skew``. A region with no events in the interval fails both (it is not fresh at all).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pipelines.control.results import CheckResult
from pipelines.errors import ReconciliationError
from pipelines.reconcile.context import Context
from pipelines.spec import FreshnessCheck


def check_freshness(ctx: Context, check: FreshnessCheck) -> list[CheckResult]:
    spec = ctx.spec
    table = spec.table(check.table)
    col = table.event_time
    if col is None:
        raise ReconciliationError(f"freshness: table {table.name} declares no event_time")
    newest: dict[str, datetime | None] = {}
    for region in spec.regions:
        p = ctx.profile(region, table)
        newest[region] = None if p is None else p.event_max
    known = [t for t in newest.values() if t is not None]
    top = max(known) if known else None
    end = ctx.interval.end
    results = []
    for region, t in newest.items():
        base: dict[str, Any] = dict(stage="reconcile", check_id=f"freshness.{table.name}", check_type="freshness", region=region,
                    table=table.name, policy=check.policy)
        threshold = {"max_lag": str(check.max_lag), "max_skew": str(check.max_skew)}
        if t is None:
            results.append(CheckResult(**base, success=False, observed={"newest": None}, threshold=threshold,
                                       message=f"{region}: no events in {ctx.interval.key} (nothing delivered)"))
            continue
        lag = end - t
        skew = (top - t) if top is not None else lag * 0
        problems = []
        if lag > check.max_lag:
            problems.append(f"newest event {t:%Y-%m-%d %H:%M} is {lag} before the interval end (max {check.max_lag})")
        if skew > check.max_skew:
            problems.append(f"{skew} behind the freshest region (max {check.max_skew})")
        results.append(CheckResult(
            **base, success=not problems, observed={"newest": t.isoformat(), "lag": str(lag), "skew": str(skew)},
            threshold=threshold,
            message=f"{region}: " + ("; ".join(problems) if problems else f"lag {lag}, skew {skew}"),
        ))
    return results
