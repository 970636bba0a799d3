"""Rows delivered in an interval whose event time lies too far outside it.

A row belongs to the interval it was delivered in (its partition). Its event time may lie a
little outside that interval (a clock a few seconds ahead, a row late from the interval
before): such a row is featured in its delivery interval. One whose event time lies further
out than the table's tolerance (:meth:`~pipelines.spec.PipelineSpec.event_time_tolerance`)
is quarantined by the raw table's validation with the reason :data:`REASON`, counted with
the other quarantined rows (control totals, the quarantine cap), and the check
``<table>.event_time_in_interval`` says how many and which interval, so ``explain`` and
``status`` name the cause.

Example::

    found = outside_delivery_interval(spec, spec.table("transactions"), interval, "eu-west", frame)
    found.check.success, found.check.unexpected_count
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import polars as pl

from pipelines.control.results import CheckResult
from pipelines.spec import Interval, PipelineSpec, TableSpec

REASON = "event time outside the delivery interval"
CHECK_TYPE = "event_time_window"


@dataclass
class Outside:
    """The check's result and the mask of the rows it quarantines (None: no row)."""

    check: CheckResult
    mask: pl.Expr | None


def _duration(td: timedelta) -> str:
    secs = td.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= size and secs % size == 0:
            return f"{int(secs // size)}{unit}"
    return f"{secs:g}s"


def outside_delivery_interval(
    spec: PipelineSpec, table: TableSpec, interval: Interval, region: str, frame: pl.DataFrame,
) -> Outside | None:
    """The ``event_time_in_interval`` check of a raw table's delivered partition (None: the
    table is not a raw table with a timestamp event time)."""
    et = table.event_time
    if table.layer != "raw" or not et or et not in frame.columns or not isinstance(frame.schema[et], pl.Datetime):
        return None
    tol = spec.event_time_tolerance(table)
    dtype = frame.schema[et]
    aware = isinstance(dtype, pl.Datetime) and dtype.time_zone is not None
    lo, hi = interval.start - tol, interval.end + tol
    if not aware:
        lo, hi = lo.replace(tzinfo=None), hi.replace(tzinfo=None)
    expr = pl.col(et).is_not_null() & ~pl.col(et).is_between(lo, hi, closed="left")
    flagged = frame.select(expr.alias("_outside")).to_series()
    n = int(flagged.sum())
    window = f"[{lo:%Y-%m-%d %H:%M:%S}, {hi:%Y-%m-%d %H:%M:%S})"
    message = ""
    if n:
        times = frame.filter(flagged)[et].dt.strftime("%Y-%m-%d %H:%M:%S")
        message = (f"{region}: {n} of {frame.height} row(s) of {table.path} delivered in {interval.key} "
                   f"quarantined: {REASON} by more than its {_duration(tol)} tolerance (event times "
                   f"{times.min()!s}..{times.max()!s})")
    check = CheckResult(
        stage="validation", check_id=f"{table.name}.event_time_in_interval", check_type=CHECK_TYPE, region=region,
        table=table.path, policy="quarantine", success=n == 0, observed=f"{n} row(s) outside",
        threshold=window, unexpected_count=n, element_count=frame.height, message=message,
        details={"reason": REASON, "tolerance": _duration(tol), "interval": interval.key},
    )
    return Outside(check, expr if n else None)
