"""Preflight of time: an interval exists for the pipeline and has closed (plus the sources'
late allowance) by the wall clock before anything runs or certifies it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pipelines.errors import (
    IntervalError,
    SpecError,
)
from pipelines.spec import Interval, PipelineSpec


def _now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def duration_text(td: timedelta) -> str:
    """A duration as a spec writes it: '10m', '2h', '1d', '90s'.

    >>> duration_text(timedelta(minutes=10))
    '10m'
    """
    secs = td.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= size and secs % size == 0:
            return f"{int(secs // size)}{unit}"
    return f"{secs:g}s"


def first_interval(spec: PipelineSpec) -> Interval:
    """The pipeline's first interval: the one starting at its ``start_date``."""
    return Interval.for_date(spec.start_date, spec.granularity)


def latest_closed(spec: PipelineSpec, now: datetime | None = None) -> Interval | None:
    """The newest interval that closed plus the late allowance by ``now`` (default: the wall
    clock); None when none has since the ``start_date``."""
    at = _now(now) - spec.late_allowance - spec.interval_length
    try:
        iv = spec.interval_at(at)
    except SpecError:  # before the year 1
        return None
    return iv if iv.start >= first_interval(spec).start else None


def valid_range(spec: PipelineSpec, now: datetime | None = None) -> str:
    """Which intervals a run of ``spec`` may process now, in words."""
    first, latest = first_interval(spec), latest_closed(spec, now)
    allowance = f" plus the late allowance of {duration_text(spec.late_allowance)}" if spec.late_allowance else ""
    if latest is None:
        return (f"{spec.name}'s intervals start at {first.key} (its start_date), and none has closed{allowance} "
                "yet")
    return f"{spec.name}'s intervals run from {first.key} (its start_date) to {latest.key} (the newest closed{allowance})"


def require_closed(
    spec: PipelineSpec, interval: Interval, *, now: datetime | None = None, allow_open: bool = False,
) -> None:
    """Refuse an interval the pipeline cannot process now, with one line naming it and the
    valid range: one before the spec's ``start_date`` (always), or one that has not closed
    plus the sources' late allowance by ``now`` (default: the wall clock,
    ``datetime.now(UTC)``) unless ``allow_open`` (tests and demos). The one place runs,
    steps and certifications ask: :func:`preflight` (every step), ``runner.certify``,
    backfills.

    >>> require_closed(spec, Interval.for_date("2099-01-01"))   # doctest: +SKIP
    IntervalError: p: interval 2099-01-01 has not closed yet (it closes at 2099-01-02 00:00 UTC, ...
    """
    first = first_interval(spec)
    if interval.start < first.start:
        raise IntervalError(
            f"{spec.name}: interval {interval.key} is before the pipeline's start_date {spec.start_date}; "
            f"{valid_range(spec, now)}", interval=interval.key, retryable=False)
    if allow_open:
        return
    at = _now(now)
    try:
        ready = interval.end + spec.late_allowance
    except OverflowError:
        raise IntervalError(f"{spec.name}: interval {interval.key}: no such interval: it would close after the last "
                            "time Lockstep can represent", interval=interval.key, retryable=False) from None
    if at >= ready:
        return
    allowance = (f", plus the late allowance of {duration_text(spec.late_allowance)}: {ready:%Y-%m-%d %H:%M} UTC"
                 if spec.late_allowance else "")
    raise IntervalError(
        f"{spec.name}: interval {interval.key} has not closed yet (it closes at {interval.end:%Y-%m-%d %H:%M} UTC"
        f"{allowance}; now {at:%Y-%m-%d %H:%M} UTC); runs and certifications wait for it. Pass --allow-open "
        "for a test or demo", interval=interval.key, closes_at=ready.isoformat(), retryable=True)


