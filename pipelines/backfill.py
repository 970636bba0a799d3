"""Backfills through the core runner: plan (show), then run (apply), resumable and idempotent.

An interval is *done* when its newest decision certified it under the current spec and every
table is still at the version that decision certified: re-running it could change nothing,
so a backfill skips it without writing anything (no new check results, no new decision).
Everything else is run in order, oldest first, so a backfill stopped midway resumes where it
stopped and a second backfill of the same range reports nothing to do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from pipelines.certify import Decision, decisions
from pipelines.preflight import require_closed
from pipelines.runner import IntervalRun, run_interval
from pipelines.spec import Interval, PipelineSpec, date_range
from pipelines.storage import partition_files


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
    latest: dict[str, Decision] = {}
    for decision in decisions(spec, root=root):
        latest[decision.interval] = decision
    spec_hash = spec.spec_hash()
    plan = []
    for iv in intervals:
        d = latest.get(iv.key)
        if d is None:
            plan.append(PlannedInterval(iv, "todo", "never run"))
        elif not d.certified:
            plan.append(PlannedInterval(iv, "todo", f"last decision blocked ({len(d.reasons)} reasons)", d))
        elif d.spec_hash != spec_hash:
            plan.append(PlannedInterval(iv, "todo", "spec changed since certification", d))
        elif not _partitions_unchanged(spec, iv, d, root):
            plan.append(PlannedInterval(iv, "todo", "its partitions changed since certification", d))
        else:
            plan.append(PlannedInterval(iv, "done", f"certified {d.generation_id}", d))
    return plan


def _partitions_unchanged(spec: PipelineSpec, iv: Interval, d: Decision, root: str | None) -> bool:
    """Every table's partition of the interval holds the files it held when certified."""
    for region in spec.regions:
        opts = spec.region_options(region)
        for t in spec.tables:
            certified = d.generation.version(region, t.layer, t.name)
            if certified is None:
                return False
            uri = spec.table_uri(region, t.layer, t.name, root)
            part = iv.partition(t.partition_by)
            if partition_files(uri, part, storage_options=opts) != partition_files(
                uri, part, version=certified, storage_options=opts
            ):
                return False
    return True


def run_backfill(
    spec: PipelineSpec, start: date, end: date, *, regions: list[str] | None = None, root: str | None = None,
    on_interval: Callable[[PlannedInterval, IntervalRun | None], None] | None = None, allow_open: bool = False,
) -> list[tuple[PlannedInterval, IntervalRun | None]]:
    """Run every interval of the plan that is not done, oldest first (``allow_open``: intervals
    that have not closed yet may run, for tests and demos)."""
    out: list[tuple[PlannedInterval, IntervalRun | None]] = []
    for planned in plan_backfill(spec, start, end, root=root, allow_open=allow_open):
        run = None if planned.status == "done" else run_interval(spec, planned.interval, regions, root=root,
                                                                   allow_open=allow_open)
        out.append((planned, run))
        if on_interval:
            on_interval(planned, run)
    return out
