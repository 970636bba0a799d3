"""The 12-region demo: a week of card traffic in which regions drift apart, and the gate.

Each day shows one way regional data goes wrong; the gate certifies the clean days and
blocks the others, while consumers keep reading the last consistent generation:

=========== ============================================================
day         what happens
=========== ============================================================
2026-01-01  clean: certified
2026-01-02  ``stale_reference``: ap-south keeps yesterday's merchant risk list;
            blocked, then ap-south is re-run with the fresh list and the day certifies
2026-01-03  ``drift``: us-west's amounts shift; blocked
2026-01-04  ``missing_partition``: eu-north delivers nothing; blocked
2026-01-05  ``duplicates``: sa-east delivers 1% of its rows twice; quarantined, certified
=========== ============================================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from pipelines.runner import IntervalRun, new_run_id, run_interval, run_region
from pipelines.spec import FaultSpec, Interval, PipelineSpec, SyntheticSource

DEMO_START = date(2026, 1, 1)

DEMO_FAULTS = [
    FaultSpec(kind="stale_reference", regions=["ap-south"], dates=[date(2026, 1, 2)]),
    FaultSpec(kind="drift", regions=["us-west"], dates=[date(2026, 1, 3)], magnitude=1.0),
    FaultSpec(kind="missing_partition", regions=["eu-north"], dates=[date(2026, 1, 4)]),
    FaultSpec(kind="duplicates", regions=["sa-east"], dates=[date(2026, 1, 5)]),
]

#: the fault the demo repairs, and the region it re-runs to do so
REPAIRED = DEMO_FAULTS[0]


def with_faults(spec: PipelineSpec, faults: list[FaultSpec], rows: int | None = None) -> PipelineSpec:
    """A copy of ``spec`` whose synthetic sources inject ``faults`` (and make ``rows`` rows)."""
    sources = {}
    for name, src in spec.sources.items():
        if isinstance(src, SyntheticSource):
            update: dict[str, object] = {"faults": faults}
            if rows is not None:
                update["rows_per_region"] = rows
            src = src.model_copy(update=update)
        sources[name] = src
    return spec.model_copy(update={"sources": sources}).with_path(spec.path)


@dataclass
class DemoStep:
    label: str
    run: IntervalRun


def run_demo(
    spec: PipelineSpec, *, days: int = 5, rows: int | None = None, root: str | None = None,
    on_step: Callable[[DemoStep], None] | None = None,
) -> list[DemoStep]:
    """Run the demo days in order; after the stale-reference day, repair it and re-gate."""
    faulty = with_faults(spec, DEMO_FAULTS, rows)
    steps = []
    for i in range(days):
        interval = Interval.for_date(date.fromordinal(DEMO_START.toordinal() + i), spec.granularity)
        run = run_interval(faulty, interval, root=root)
        faults = [f.kind for f in DEMO_FAULTS if f.dates and interval.start.date() in f.dates]
        step = DemoStep(f"{interval.key} {', '.join(faults) or 'clean'}", run)
        steps.append(step)
        if on_step:
            on_step(step)
        if interval.start.date() in REPAIRED.dates and run.decision and not run.decision.certified:
            # the operator's fix: re-run the stale region with the fresh reference data
            fixed = with_faults(spec, [f for f in DEMO_FAULTS if f is not REPAIRED], rows)
            run_id = new_run_id()
            for region in REPAIRED.regions:
                run_region(fixed, interval, region, root=root, run_id=run_id)
            rerun = run_interval(fixed, interval, regions=[], root=root, run_id=run_id)
            step = DemoStep(f"{interval.key} after re-running {', '.join(REPAIRED.regions)}", rerun)
            steps.append(step)
            if on_step:
                on_step(step)
    return steps
