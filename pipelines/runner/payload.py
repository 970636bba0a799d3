"""What an Airflow task hands the runner: a small, typed payload (:class:`StepPayload`) naming
the step, the spec, the interval and the region; :func:`run_step` runs it."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from pipelines.control.results import record_failure
from pipelines.errors import IntervalError, SpecError
from pipelines.preflight import preflight
from pipelines.runner.interval import gate_step, reconcile_step, run_region
from pipelines.runner.steps import (
    INPUT_LAYERS,
    OUTPUT_LAYERS,
    ingest,
    transform,
    validate,
)
from pipelines.spec import Interval, PipelineSpec, load_spec

Step = Literal["ingest", "validate_inputs", "transform", "validate", "region", "reconcile", "gate"]
#: the steps that run in one region (a payload names it)
REGION_STEPS = ("ingest", "validate_inputs", "transform", "validate", "region")


class StepPayload(BaseModel):
    """What one task needs to run one step: small, JSON-able, the same under any executor."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    spec: str
    step: Step
    interval_start: datetime
    interval_end: datetime
    region: str | None = None
    root: str | None = None
    run_id: str = ""
    #: who runs the step: recorded on the decision a gate step makes (a DAG task's
    #: ``airflow:<user>``; empty: the settings' identity, :meth:`~pipelines.spec.settings.Settings.who`)
    actor: str = ""
    force: bool = False
    #: run an interval that has not closed plus the late allowance yet (tests and demos)
    allow_open: bool = False
    #: for reconcile: region -> why it did not deliver in this run, as the orchestrator saw its
    #: tasks (e.g. ``{"eu-west": "ingest: failed"}``); the reconciliation blocks naming each
    undelivered: dict[str, str] = Field(default_factory=dict)

    @property
    def interval(self) -> Interval:
        return Interval(start=self.interval_start, end=self.interval_end)


def run_step(payload: StepPayload) -> dict[str, Any]:
    """Run one step described by a payload; returns references only. A region's step that
    fails records its error under the region's prefix (what the reconciliation names when the
    region delivers nothing), then raises it."""
    if payload.region is None and payload.step in REGION_STEPS:
        # a malformed payload: no retry mends it, so Airflow fails the task at once
        raise SpecError(f"step {payload.step} needs a region", step=payload.step)
    spec = load_spec(payload.spec)
    if payload.region is None:
        return _control_step(spec, payload)
    try:
        return _region_step(spec, payload, payload.region)
    except IntervalError:
        raise  # the interval itself is refused (not closed, no such interval): nothing ran, nothing is written
    except Exception as exc:
        record_failure(spec.control_root(payload.root), spec.name, payload.interval.key, payload.run_id,
                       payload.region, payload.step, exc, spec.control_options())
        raise


def _region_step(spec: PipelineSpec, payload: StepPayload, region: str) -> dict[str, Any]:
    # every step a closed interval only; a region's step checks its own storage and inputs
    preflight(spec, payload.interval, [region], root=payload.root, allow_open=payload.allow_open)
    iv, root = payload.interval, payload.root
    if payload.step == "ingest":
        refs = ingest(spec, iv, region, root=root, force=payload.force, run_id=payload.run_id)
        return {"tables": [r.to_dict() for r in refs]}
    if payload.step == "transform":
        refs = transform(spec, iv, region, root=root, force=payload.force, run_id=payload.run_id)
        return {"tables": [r.to_dict() for r in refs]}
    if payload.step in ("validate_inputs", "validate"):
        layers = INPUT_LAYERS if payload.step == "validate_inputs" else OUTPUT_LAYERS
        checks = validate(spec, iv, region, layers=layers, root=root, run_id=payload.run_id)
        return {"checks": len(checks), "blocking": sum(c.blocking for c in checks)}
    rr = run_region(spec, iv, region, root=root, run_id=payload.run_id, force=payload.force)
    return {"tables": [r.to_dict() for r in rr.tables], "blocking": len(rr.blocking)}


def _control_step(spec: PipelineSpec, payload: StepPayload) -> dict[str, Any]:
    # reconcile and gate: a closed interval only, and no region's storage or inputs looked at
    # (a region that is down must not keep the control plane from deciding)
    preflight(spec, payload.interval, [], root=payload.root, allow_open=payload.allow_open)
    iv, root = payload.interval, payload.root
    if payload.step == "reconcile":
        checks = reconcile_step(spec, iv, root=root, run_id=payload.run_id, undelivered=dict(payload.undelivered))
        return {"checks": len(checks), "blocking": sum(c.blocking for c in checks)}
    decision = gate_step(spec, iv, root=root, run_id=payload.run_id, actor=payload.actor or None)
    return {"status": decision.status, "generation_id": decision.generation_id, "reasons": decision.reasons}
