"""The one parser of the CLI's dates and intervals (``--date``, backfill's ``--start``/``--end``).

A value that is not a date, or names an interval no one can represent (``9999-12-31``: its
end would pass the year 9999), is one :class:`~pipelines.errors.IntervalError` naming the
option, the value and (for an interval) the pipeline's valid range. Whether an interval may
run *now* (its start_date, closed plus the late allowance) is
:func:`pipelines.preflight.require_closed`'s to say, at run time.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from pipelines.errors import IntervalError

if TYPE_CHECKING:
    from pipelines.spec import Interval, PipelineSpec

AllowOpenOpt = Annotated[
    bool, typer.Option("--allow-open", help="run an interval that has not closed yet (tests and demos)"),
]


def parse_day(value: str, option: str = "--date") -> date:
    """A calendar day YYYY-MM-DD given to ``option``.

    >>> parse_day("2026-01-01", "--start")
    datetime.date(2026, 1, 1)
    """
    from pipelines.spec import parse_day as parse

    return parse(value, option)


def parse_interval(spec: PipelineSpec, value: str, option: str = "--date") -> Interval:
    """The interval of ``spec`` that ``value`` names: a day YYYY-MM-DD (in a sub-daily
    pipeline, the day's first interval) or an interval key (2026-01-01T05, 2026-01-01T05:15).

    >>> parse_interval(load_spec("fraud_features"), "2026-01-01").key   # doctest: +SKIP
    '2026-01-01'
    """
    from pipelines.spec import Interval

    value = value.strip()
    if "T" in value:
        try:
            found = spec.interval_at(value)
        except IntervalError as exc:
            if "when" not in exc.context:  # not a key at all
                raise IntervalError(f"{option}: expected an interval key such as 2026-01-01, 2026-01-01T05 or "
                                    f"2026-01-01T05:15, got {value!r}", value=value) from None
            raise _no_such(spec, option, value, exc) from None
        if _as_utc(value) != found.start:
            # a time inside an interval, not its start: 2026-01-01T05 of a daily pipeline is not an interval
            raise IntervalError(f"{option} {value}: not an interval of {spec.name} ({spec.granularity} intervals); "
                                f"the interval holding it is {found.key}", value=value)
        return found
    day = parse_day(value, option)
    try:
        return Interval.for_date(day, spec.granularity)
    except IntervalError as exc:
        raise _no_such(spec, option, value, exc) from None


def _as_utc(key: str) -> datetime:
    when = datetime.fromisoformat(key)
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _no_such(spec: PipelineSpec, option: str, value: str, exc: IntervalError) -> IntervalError:
    from pipelines.preflight import valid_range

    return IntervalError(f"{option} {value}: {exc.context.get('reason', exc)}; {valid_range(spec)}", value=value)
