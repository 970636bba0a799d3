"""Intervals and durations: the time arithmetic of a spec.

An :class:`Interval` is the data interval a run processes, [start, end) in UTC, of a
pipeline's granularity (a day, an hour, or minutes dividing an hour); its ``key``
('2026-01-01', '2026-01-01T05', '2026-01-01T05:15') names it everywhere. ``Duration`` is the
field type of every length a spec writes ('90s', '5m', '2h', '7d', '1w').

Example::

    Interval.containing("2026-01-01T05:20", "15m").key   # '2026-01-01T05:15'
    partition_columns("hour")                            # ['ds', 'hour']
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, field_validator

from pipelines.errors import IntervalError, SpecError
from pipelines.spec.base import _Model

_DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def _parse_duration(v: Any) -> Any:
    """Accept '90s', '5m', '2h', '7d', '1w' (and anything pydantic reads as a timedelta)."""
    if isinstance(v, str):
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", v)
        if m:
            return timedelta(**{_DURATION_UNITS[m.group(2)]: float(m.group(1))})
    return v


Duration = Annotated[timedelta, BeforeValidator(_parse_duration)]

#: granularities: a day, an hour, or a whole number of minutes that divides an hour
GRANULARITY_PATTERN = r"^(day|hour|(1|2|3|4|5|6|10|12|15|20|30)m)$"


def granularity_length(granularity: str) -> timedelta:
    """How long an interval of ``granularity`` lasts: 'day', 'hour' or minutes such as '15m'.

    >>> granularity_length("15m")
    datetime.timedelta(seconds=900)
    """
    if granularity == "day":
        return timedelta(days=1)
    if granularity == "hour":
        return timedelta(hours=1)
    m = re.fullmatch(r"(\d+)m", granularity)
    if m is None or 60 % int(m.group(1)):
        raise SpecError(f"granularity {granularity!r}: expected day, hour or minutes dividing an hour (15m)")
    return timedelta(minutes=int(m.group(1)))


def partition_columns(granularity: str) -> list[str]:
    """The partition columns of a table at ``granularity``: ds, then hour, then minute."""
    if granularity == "day":
        return ["ds"]
    return ["ds", "hour"] if granularity == "hour" else ["ds", "hour", "minute"]


def partition_key(values: dict[str, str]) -> str:
    """A partition's sortable key, in the interval-key format ('2026-01-01', '2026-01-01T05',
    '2026-01-01T05:15'): zero-padded, so string order is time order."""
    key = values["ds"]
    if "hour" in values:
        key += f"T{values['hour']}"
        if "minute" in values:
            key += f":{values['minute']}"
    return key


class Interval(_Model):
    """The data interval a run processes: [start, end) in UTC. Any length a cron schedule
    makes: a day, an hour, or minutes (``Interval.for_date("2026-01-01", "15m", 5, 15)``)."""

    start: datetime
    end: datetime

    @classmethod
    def for_date(cls, ds: date | str, granularity: str = "day", hour: int = 0, minute: int = 0) -> Interval:
        """The interval of ``granularity`` that starts at ``ds`` ``hour``:``minute`` (UTC)."""
        d = parse_day(ds) if isinstance(ds, str) else ds
        length = granularity_length(granularity)
        try:
            start = datetime(d.year, d.month, d.day, tzinfo=UTC)
            if length < timedelta(days=1):
                start = start.replace(hour=hour, minute=minute if length < timedelta(hours=1) else 0)
            end = start + length
        except OverflowError:
            raise _unrepresentable(d) from None
        except ValueError as exc:  # an hour or minute out of range
            raise IntervalError(f"interval {d.isoformat()} {hour:02d}:{minute:02d}: {exc}") from None
        return cls(start=start, end=end)

    @classmethod
    def containing(cls, when: datetime | date | str, granularity: str = "day") -> Interval:
        """The interval of ``granularity`` that contains ``when``: a datetime (naive is UTC), a
        date, or an interval key ('2026-01-01', '2026-01-01T05', '2026-01-01T05:15').

        >>> Interval.containing("2026-01-01T05:20", "15m").key
        '2026-01-01T05:15'
        """
        if isinstance(when, str):
            try:
                when = datetime.fromisoformat(when) if "T" in when else date.fromisoformat(when)
            except ValueError:
                raise IntervalError(f"{when!r}: expected an interval key such as 2026-01-01, 2026-01-01T05 "
                                    "or 2026-01-01T05:15") from None
        length = granularity_length(granularity)
        try:
            if not isinstance(when, datetime):
                when = datetime(when.year, when.month, when.day, tzinfo=UTC)
            when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
            day = datetime(when.year, when.month, when.day, tzinfo=UTC)
            start = day + ((when - day) // length) * length if length < timedelta(days=1) else day
            end = start + length
        except OverflowError:
            raise _unrepresentable(when) from None
        return cls(start=start, end=end)

    @property
    def length(self) -> timedelta:
        return self.end - self.start

    @field_validator("start", "end")
    @classmethod
    def _utc(cls, v: datetime) -> datetime:
        v = v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)
        # a plain datetime in UTC, whatever came in (Airflow hands out pendulum DateTimes,
        # whose time zone polars does not recognise)
        return datetime(v.year, v.month, v.day, v.hour, v.minute, v.second, v.microsecond, tzinfo=UTC)

    @property
    def ds(self) -> str:
        return self.start.date().isoformat()

    @property
    def hour(self) -> int:
        return self.start.hour

    @property
    def minute(self) -> int:
        return self.start.minute

    @property
    def key(self) -> str:
        """A short id: '2026-01-01' for days, '2026-01-01T05' for hours, '2026-01-01T05:15'
        for intervals shorter than an hour."""
        if self.length >= timedelta(days=1):
            return self.ds
        if self.length >= timedelta(hours=1) and self.minute == 0:
            return f"{self.ds}T{self.hour:02d}"
        return f"{self.ds}T{self.hour:02d}:{self.minute:02d}"

    def partition(self, partition_by: list[str]) -> dict[str, str]:
        values = {"ds": self.ds, "hour": f"{self.hour:02d}", "minute": f"{self.minute:02d}"}
        return {col: values[col] for col in partition_by}

    def contains(self, when: datetime) -> bool:
        """Is ``when`` in [start, end)?"""
        return self.start <= when < self.end


#: the last instant an interval may end at: Python's datetime stops at the year 9999
LAST_INSTANT = datetime.max.replace(tzinfo=UTC)


def _unrepresentable(when: date | datetime) -> IntervalError:
    what = f"{when:%Y-%m-%dT%H:%M}" if isinstance(when, datetime) else when.isoformat()
    reason = f"no such interval: it would end after {LAST_INSTANT:%Y-%m-%d %H:%M} UTC, the last time Lockstep can represent"
    return IntervalError(f"interval {what}: {reason}", when=what, reason=reason)


def parse_day(value: str, what: str = "date") -> date:
    """A calendar day written YYYY-MM-DD, or one IntervalError naming ``what`` and the value.

    >>> parse_day("2026-01-01")
    datetime.date(2026, 1, 1)
    """
    try:
        return date.fromisoformat(value.strip())
    except ValueError as exc:
        reason = "" if "Invalid isoformat" in str(exc) else f" ({exc})"
        raise IntervalError(f"{what}: expected a date YYYY-MM-DD, got {value!r}{reason}", value=value) from None


def date_range(start: date, end: date) -> list[date]:
    """Every date from ``start`` to ``end``, both included."""
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]
