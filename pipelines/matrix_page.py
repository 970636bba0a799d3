"""One page of the certification matrix on a calendar axis: what the view's pipeline page and
``/api/pipelines/{dag_id}/matrix`` show.

The columns are the pipeline's intervals (its granularity: days, hours or minutes) between
``start`` and ``end``, every one of them, an interval nobody ran shown ``not run``; filters
keep the regions (rows) and the states asked for (an interval is kept when one kept region's
cell is in one of the states); the result is paged from the newest: ``page`` 0 ends at
``end``, page 1 holds the ``size`` intervals before it, and so on.

Without ``end`` (or ``before``) the range ends at the newest interval with a decision or
data, else at the interval open now; it begins at ``start``, never before the spec's
``start_date`` (nor before an interval with data). Every bad value is one :class:`~pipelines.errors.QueryError` naming the
parameter and the value, raised before anything is read.

>>> m = matrix_page(spec, states=["blocked"], start="2026-01-01", end="2026-01-31")  # doctest: +SKIP
>>> m["paging"]["total"], m["intervals"]
(2, ['2026-01-02', '2026-01-09'])
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from pipelines.certify import Decision, decisions
from pipelines.errors import LockstepError, QueryError
from pipelines.matrix import STATES, certification_matrix, intervals_with_data
from pipelines.spec import Interval, PipelineSpec

__all__ = ["MAX_INTERVALS", "MAX_SIZE", "default_size", "interval_of_run", "matrix_page", "parse_states"]

#: the longest range a page is cut from (a year of 15-minute intervals and then some)
MAX_INTERVALS = 100_000
#: the most columns one page holds
MAX_SIZE = 500


def default_size(spec: PipelineSpec) -> int:
    """Columns per page: two weeks of days, a day of hours (24 of shorter intervals)."""
    return 14 if spec.interval_length >= timedelta(days=1) else 24


def parse_states(values: Iterable[str]) -> list[str]:
    """The states asked for (``rolled-back`` and ``not-run`` spelled with a dash are accepted),
    in :data:`~pipelines.matrix.STATES` order."""
    asked = set()
    for value in values:
        for part in str(value).split(","):
            name = part.strip().lower().replace("-", " ").replace("_", " ")
            if not name:
                continue
            if name not in STATES:
                raise QueryError(f"state: unknown state {part.strip()!r}; one of {', '.join(STATES)}",
                                 field="state", value=part)
            asked.add(name)
    return [s for s in STATES if s in asked]


def _regions(spec: PipelineSpec, values: Iterable[str], allowed: list[str]) -> list[str]:
    asked = {p.strip() for v in values for p in str(v).split(",") if p.strip()}
    unknown = sorted(asked - set(allowed))
    if unknown:
        raise QueryError(f"region: {spec.name} has no region {unknown[0]!r} you may read; its regions: "
                         f"{', '.join(allowed)}", field="region", value=unknown[0])
    return [r for r in allowed if r in asked] or list(allowed)


def _interval(spec: PipelineSpec, field: str, value: str) -> Interval:
    try:
        return spec.interval_at(value.strip())
    except (LockstepError, ValueError, OverflowError):
        raise QueryError(f"{field}: expected an interval key such as 2026-01-01 or 2026-01-01T05, got {value!r}",
                         field=field, value=value) from None


def _int(field: str, value: Any, low: int, high: int) -> int:
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise QueryError(f"{field}: expected a whole number, got {value!r}", field=field, value=value) from None
    if not low <= n <= high:
        raise QueryError(f"{field}: {n} is out of range ({low} to {high})", field=field, value=n)
    return n


def _key(start: datetime, length: timedelta) -> str:
    return Interval.model_construct(start=start, end=start + length).key


def matrix_page(
    spec: PipelineSpec, *, root: str | None = None, regions: Iterable[str] = (), states: Iterable[str] = (),
    start: str | None = None, end: str | None = None, before: str | None = None, page: Any = 0,
    size: Any = None, now: datetime | None = None, allowed: Iterable[str] | None = None,
) -> dict[str, Any]:
    """The matrix (:func:`~pipelines.matrix.certification_matrix`'s dict, cut to the kept
    regions) of one page, plus ``"paging"`` (``page, size, pages, total, older, newer, first,
    last, range_start, range_end, later_end``: ``newer`` is false on page 0, where
    ``later_end`` is the ``end`` of the next ``size`` intervals up to now, when the range ends earlier) and ``"filters"``
    (``regions, states, start, end``), and ``"granularity"``; ``allowed``: the regions the
    reader may see (default every region): the others are neither shown nor filtered on."""
    now = now or datetime.now(UTC)
    readable = [r for r in spec.regions if allowed is None or r in set(allowed)]
    keep = _regions(spec, regions, readable)
    wanted = parse_states(states)
    first = _interval(spec, "start", start) if start else None
    last = _interval(spec, "end", end) if end else None
    if before:
        cut = _interval(spec, "before", before)
        last = spec.interval_at(cut.start - spec.interval_length) if last is None or last.start >= cut.start else last
    n = default_size(spec) if size in (None, "") else _int("size", size, 1, MAX_SIZE)
    p = _int("page", page, 0, MAX_INTERVALS)

    log: list[Decision] = decisions(spec, root=root)
    data = intervals_with_data(spec, root)
    active = {d.interval for d in log} | {k for ks in data.values() for k in ks}
    length = spec.interval_length
    if last is None:
        newest = max(active, default=None)
        last = spec.interval_at(newest) if newest else spec.interval_at(now)
        if first is not None and first.start > last.start:  # a range from a later start: up to now
            last = max(first, spec.interval_at(now), key=lambda iv: iv.start)
    if first is None:
        earliest = min([spec.start_date.isoformat(), *active])
        first = spec.interval_at(earliest)
        if first.start > last.start:
            first = last
    if first.start > last.start:
        raise QueryError(f"start: {first.key} is after end {last.key}", field="start", value=first.key)
    opening = spec.interval_at(min([spec.start_date.isoformat(), *active]))
    if first.start < opening.start <= last.start:  # the schedule has no interval before its start_date
        first = opening
    count = (last.start - first.start) // length + 1
    if count > MAX_INTERVALS:
        raise QueryError(f"start: {first.key} to {last.key} holds {count:,} intervals; at most {MAX_INTERVALS:,}",
                         field="start", value=first.key)
    calendar = [_key(first.start + i * length, length) for i in range(count)]

    chosen = calendar
    if wanted:  # the intervals with a kept region in a wanted state (unrun ones are all "not run")
        ran = [k for k in calendar if k in active]
        cells = certification_matrix(spec, root=root, log=log, intervals=ran, now=now)["cells"] if ran else {}
        chosen = [k for k in calendar
                  if any((cells[k][r]["state"] if k in cells else "not run") in wanted for r in keep)]
    total = len(chosen)
    pages = max(1, -(-total // n))
    if p >= pages:
        raise QueryError(f"page: {p} is past the last page ({pages - 1}) of {total} interval(s)", field="page", value=p)
    shown = chosen[max(0, total - n * (p + 1)): total - n * p]
    m = certification_matrix(spec, root=root, log=log, intervals=shown, now=now)
    m["regions"] = keep
    m["cells"] = {k: {r: row[r] for r in keep} for k, row in m["cells"].items()}
    m["granularity"] = spec.granularity
    m["filters"] = {"regions": keep if len(keep) < len(readable) else [], "states": wanted,
                    "start": first.key, "end": last.key}
    m["paging"] = {"page": p, "size": n, "pages": pages, "total": total, "older": p + 1 < pages, "newer": p > 0,
                   "first": shown[0] if shown else None, "last": shown[-1] if shown else None,
                   "range_start": first.key, "range_end": last.key,
                   "later_end": None}
    current = spec.interval_at(now)
    if p == 0 and last.start < current.start:  # the calendar goes on, up to the interval open now
        m["paging"]["later_end"] = _key(min(current.start, last.start + n * length), length)
    return m


def interval_of_run(spec: PipelineSpec, run_id: str, *, root: str | None = None) -> str | None:
    """The interval an Airflow run processed, as the control plane recorded it: the
    decision it made, else the check results or step failures it recorded (``None``: the run
    recorded nothing yet)."""
    for d in reversed(decisions(spec, root=root)):
        if d.run_id == run_id:
            return d.interval
    from pipelines.control.results import load_results

    found = load_results(spec.control_root(root), spec.name, run_id=run_id, storage_options=spec.control_options(),
                         regions=spec.regions)
    return None if found.is_empty() else str(found.sort("recorded_at")["interval"][-1])
