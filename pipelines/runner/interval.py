"""An interval end to end: a region's steps in order (:func:`run_region`), every region then
the reconciliation and the gate (:func:`run_interval`), and certification alone."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from pipelines.control.decisions import Decision
from pipelines.control.results import CheckResult, load_results, record_results, rows_to_results
from pipelines.errors import SpecError
from pipelines.generation import generation_of
from pipelines.preflight import preflight, require_closed
from pipelines.runner.standing import standing
from pipelines.runner.steps import (
    INPUT_LAYERS,
    OUTPUT_LAYERS,
    ingest,
    new_run_id,
    reconcile,
    region_step,
    transform,
    validate,
)
from pipelines.spec import Interval, PipelineSpec
from pipelines.storage import (
    OpenTables,
    TableRef,
    decision_tables,
)


@dataclass
class RegionRun:
    region: str
    tables: list[TableRef]
    checks: list[CheckResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def blocking(self) -> list[CheckResult]:
        return [c for c in self.checks if c.blocking]


#: what a runner announces before each step: (region, step); region "*" for the cross-region ones
OnStep = Callable[[str, str], None]


def _quiet(region: str, step: str) -> None:
    return None


@region_step
def run_region(spec: PipelineSpec, interval: Interval, region: str, *, root: str | None = None,
               run_id: str = "", force: bool = False, stands: bool = False, on_step: OnStep = _quiet) -> RegionRun:
    """ingest -> validate inputs -> transform -> validate features, for one region.

    Inputs are validated before the transform, so rows a policy quarantines never feed a
    feature. ``stands``: the interval's certification stands (:func:`standing`), so tables
    whose step skipped (fingerprint unchanged) are not validated again: their certified
    versions were, under the same suites."""
    t0 = time.perf_counter()
    on_step(region, "ingest")
    refs = ingest(spec, interval, region, root=root, force=force, run_id=run_id)
    on_step(region, "validate inputs")
    checks = [] if stands and all(r.skipped for r in refs) else validate(
        spec, interval, region, layers=INPUT_LAYERS, root=root, run_id=run_id)
    on_step(region, "transform")
    derived = transform(spec, interval, region, root=root, force=force, run_id=run_id, stands=stands)
    on_step(region, "validate features")
    checks += [] if stands and all(r.skipped for r in refs + derived) else validate(
        spec, interval, region, layers=OUTPUT_LAYERS, root=root, run_id=run_id)
    return RegionRun(region, refs + derived, checks, time.perf_counter() - t0)


@dataclass
class IntervalRun:
    interval: Interval
    run_id: str
    regions: list[RegionRun]
    checks: list[CheckResult] = field(default_factory=list)
    decision: Decision | None = None
    seconds: float = 0.0
    #: nothing was written and the interval's certification stands: no new decision recorded
    unchanged: bool = False

    def summary(self) -> dict[str, Any]:
        return {
            "interval": self.interval.key,
            "run_id": self.run_id,
            "seconds": round(self.seconds, 3),
            "unchanged": self.unchanged,
            "decision": None if self.decision is None else {
                "status": self.decision.status, "generation_id": self.decision.generation_id,
                "reasons": self.decision.reasons,
            },
            "regions": {
                r.region: {
                    "seconds": round(r.seconds, 3),
                    "tables": [{"table": ref.uri.rsplit("/", 2)[-2] + "/" + ref.uri.rsplit("/", 1)[-1],
                                "version": ref.version, "rows": ref.rows, "skipped": ref.skipped} for ref in r.tables],
                    "blocking_checks": len(r.blocking),
                }
                for r in self.regions
            },
        }


def run_interval(
    spec: PipelineSpec, interval: Interval, regions: list[str] | None = None, *, root: str | None = None,
    run_id: str | None = None, certify: bool = True, force: bool = False,
    on_region: Callable[[RegionRun], None] | None = None, allow_open: bool = False, on_step: OnStep = _quiet,
) -> IntervalRun:
    """Run one interval: every region (or ``regions``), then reconcile and gate.

    With a subset of regions, the gate still judges the whole generation (the other regions'
    tables stay at their current versions). The interval must have closed plus the sources'
    late allowance (``allow_open``: a test or demo may run one that has not). ``on_step`` hears
    (region, step) before each step, ("*", "reconcile") and ("*", "gate") last; ``on_region``
    each region's result.
    """
    # one clear error before anything is written: an interval that does not exist or has not
    # closed (require_closed) first, then the spec, roots and inputs
    preflight(spec, interval, regions, root=root, allow_open=allow_open)
    t0 = time.perf_counter()
    run_id = run_id or new_run_id()
    before = standing(spec, interval, root=root) if certify and not force else None
    stands = before is not None and before.stands
    runs = []
    for region in spec.regions if regions is None else regions:
        unknown = region not in spec.regions
        if unknown:
            raise SpecError(f"{spec.name}: unknown region {region!r}; regions: {spec.regions}")
        rr = run_region(spec, interval, region, root=root, run_id=run_id, force=force, stands=stands,
                        on_step=on_step)
        runs.append(rr)
        if on_region:
            on_region(rr)
    result = IntervalRun(interval, run_id, runs)
    if stands and before is not None and all(ref.skipped for r in runs for ref in r.tables):
        # nothing was written and the certification stands: the same evidence would give the
        # same decision, so none is recorded (the history holds decisions, not re-runs)
        result.decision, result.unchanged = before.decision, True
    elif certify:
        on_step("*", "reconcile")
        result.checks = reconcile_step(spec, interval, root=root, run_id=run_id)
        on_step("*", "gate")
        result.decision = gate_step(spec, interval, root=root, run_id=run_id)
    result.seconds = time.perf_counter() - t0
    return result


def reconcile_step(spec: PipelineSpec, interval: Interval, *, root: str | None = None, run_id: str = "",
                   tables: OpenTables | None = None, undelivered: dict[str, str] | None = None) -> list[CheckResult]:
    """Run the cross-region checks and record their results (certifies nothing). ``tables``:
    the decision's open control tables (:func:`certify_interval` shares them with :func:`gate_step`).
    ``undelivered``: region -> why it did not deliver in this run (an orchestrator's view)."""
    checks = reconcile(spec, interval, root=root, run_id=run_id, undelivered=undelivered)
    record_results(spec.control_root(root), spec.name, interval.key, run_id, checks, spec.control_options(),
                   tables=tables)
    return checks


def gate_step(spec: PipelineSpec, interval: Interval, *, root: str | None = None, run_id: str = "",
              tables: OpenTables | None = None, actor: str | None = None) -> Decision:
    """Certify or block the interval's generation from this run's recorded reconciliation:
    exactly the generation it judged (its ``generation.snapshot``), whatever moved since.
    The results are read back from the check-results table at its newest version (through
    ``tables`` when given: the same open table, brought up to date, never results held in memory).
    ``actor``: who decides (an Airflow task's ``airflow:<user>``; default: the settings' identity)."""
    from pipelines.certify import gate

    tables = tables or decision_tables(spec.control_options())
    df = load_results(spec.control_root(root), spec.name, interval.key, run_id, spec.control_options(), tables=tables)
    recorded = rows_to_results(df.filter(pl.col("stage") != "validation"))  # (decoded: this run's reconciliation only)
    return gate(spec, interval, recorded, root=root, run_id=run_id, generation=generation_of(recorded), tables=tables,
                who=actor)


def certify_interval(spec: PipelineSpec, interval: Interval, *, root: str | None = None, run_id: str = "",
                     allow_open: bool = False, actor: str | None = None) -> Decision:
    """Reconcile the interval from the evidence store, record every result, then certify or
    block exactly the generation judged, in one commit to the certification log.

    Results are written before the decision; the decision is one Delta commit holding every
    region's table versions, so a failure anywhere before it leaves no certification at all,
    and a reader never sees some regions of a generation certified and others not. The
    control tables are opened once for the decision (each later use reads only the commits
    since), never kept for another one. An interval that has not closed plus the late
    allowance is refused (``allow_open``: tests and demos). ``actor``: who decides (default:
    the settings' identity).

    Example::

        decision = certify_interval(spec, Interval.for_date("2026-01-01"))
        decision.status, decision.generation_id
    """
    require_closed(spec, interval, allow_open=allow_open)
    run_id = run_id or new_run_id()
    with OpenTables(spec.control_options()) as tables:
        reconcile_step(spec, interval, root=root, run_id=run_id, tables=tables)
        return gate_step(spec, interval, root=root, run_id=run_id, tables=tables, actor=actor)


#: :func:`certify_interval` under its earlier name (``pipelines.certify`` is the package)
certify = certify_interval
