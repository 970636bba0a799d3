"""The one runner: every step of a pipeline for an interval, in-process.

The CLI, backfills, tests and Airflow tasks all call these functions. A step takes a spec,
an interval and (for per-region steps) a region, and returns small references - table URIs,
Delta versions, row counts - never frames, so an Airflow task can pass its result through
XCom under any executor.

Steps of one interval::

    for each region:  ingest -> validate_inputs -> transform -> validate   (Airflow maps them)
    then:             reconcile -> gate                    (all regions together)

Example::

    spec = load_spec("fraud_features")
    result = run_interval(spec, Interval.for_date("2026-01-01"))
    result.decision.status     # 'certified' or 'blocked'
"""

from __future__ import annotations

from pipelines.runner.interval import (
    IntervalRun,
    RegionRun,
    certify,
    certify_interval,
    gate_step,
    reconcile_step,
    run_interval,
    run_region,
)
from pipelines.runner.payload import REGION_STEPS, StepPayload, run_step
from pipelines.runner.steps import (
    INPUT_LAYERS,
    OUTPUT_LAYERS,
    ingest,
    new_run_id,
    reconcile,
    transform,
    validate,
)

__all__ = [
    "INPUT_LAYERS", "OUTPUT_LAYERS", "REGION_STEPS", "IntervalRun", "RegionRun", "StepPayload", "certify",
    "certify_interval", "gate_step", "ingest", "new_run_id", "reconcile", "reconcile_step", "run_gate_checks",
    "run_interval", "run_region", "run_step", "transform", "validate",
]
