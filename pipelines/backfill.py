"""Backfills through the core runner: plan (show), then run (apply), resumable and idempotent.

An interval is *done* when its certification stands (:mod:`pipelines.runner.standing`: its
newest decision certified it under the current spec and suites, and every table's partition
still holds the files certified, and no input inside its lookback changed since, see
:mod:`pipelines.certify.stale`): re-running it could change nothing, so a backfill skips it
without writing anything (no new check results, no new decision).
Everything else is run in order, oldest first, so a backfill stopped midway resumes where it
stopped and a second backfill of the same range reports nothing to do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from pipelines.certify import Decision, decisions
from pipelines.certify.stale import stale_certifications
from pipelines.preflight import require_closed
from pipelines.runner import IntervalRun, run_interval
from pipelines.runner.standing import standing
from pipelines.spec import Interval, PipelineSpec, date_range


@dataclass
class PlannedInterval:
    interval: Interval
    status: str  # done | todo
    why: str
    decision: Decision | None = None


def plan_backfill(
    spec: PipelineSpec, start: date, end: date, *, root: str | None = None, allow_open: bool = False,
) -> list[PlannedInterval]:
    """What a backfill of [start, end] would do, interval by interval (writes nothing).

    Every interval of the range must exist and have closed plus the late allowance (or
    ``allow_open``): a range reaching before the start_date or into the future is refused
    whole, naming the valid range, before anything runs."""
    if end < start:
        from pipelines.errors import SpecError

        raise SpecError(f"backfill: --end {end} is before --start {start}")
    for day in (start, end):  # the earliest and the newest: the others lie between
        require_closed(spec, Interval.for_date(day, spec.granularity), allow_open=allow_open)
    intervals = [Interval.for_date(day, spec.granularity) for day in date_range(start, end)]
    log = decisions(spec, root=root)
    stale = stale_certifications(spec, root=root, log=log, intervals=[iv.key for iv in intervals])
    plan = []
    for iv in intervals:
        found = standing(spec, iv, root=root, log=log, stale=stale)
        d = found.decision
        if found.stands and d is not None:
            plan.append(PlannedInterval(iv, "done", f"certified {d.generation_id}", d))
        else:
            plan.append(PlannedInterval(iv, "todo", found.why, d))
    return plan


def run_backfill(
    spec: PipelineSpec, start: date, end: date, *, regions: list[str] | None = None, root: str | None = None,
    on_interval: Callable[[PlannedInterval, IntervalRun | None], None] | None = None, allow_open: bool = False,
    on_step: Callable[[Interval, str, str], None] | None = None,
) -> list[tuple[PlannedInterval, IntervalRun | None]]:
    """Run every interval of the plan that is not done, oldest first (``allow_open``: intervals
    that have not closed yet may run, for tests and demos). ``on_step`` hears (interval, region,
    step) before each step of a run."""
    out: list[tuple[PlannedInterval, IntervalRun | None]] = []
    for planned in plan_backfill(spec, start, end, root=root, allow_open=allow_open):
        iv = planned.interval

        def step(region: str, name: str, iv: Interval = iv) -> None:
            if on_step is not None:
                on_step(iv, region, name)

        run = None if planned.status == "done" else run_interval(spec, iv, regions, root=root,
                                                                   allow_open=allow_open, on_step=step)
        out.append((planned, run))
        if on_interval:
            on_interval(planned, run)
    return out
