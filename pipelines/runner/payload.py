"""What an Airflow task hands the runner: a small, typed payload (:class:`StepPayload`) naming
the step, the spec, the interval and the region; :func:`run_step` runs it."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from pipelines.errors import SpecError
from pipelines.preflight import preflight
from pipelines.runner.interval import gate_step, reconcile_step, run_region
from pipelines.runner.steps import (
    INPUT_LAYERS,
    OUTPUT_LAYERS,
    ingest,
    transform,
    validate,
)
from pipelines.spec import Interval, load_spec

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

    @property
    def interval(self) -> Interval:
        return Interval(start=self.interval_start, end=self.interval_end)


def run_step(payload: StepPayload) -> dict[str, Any]:
    """Run one step described by a payload; returns references only."""
    if payload.region is None and payload.step in REGION_STEPS:
        # a malformed payload: no retry mends it, so Airflow fails the task at once
        raise SpecError(f"step {payload.step} needs a region", step=payload.step)
    spec = load_spec(payload.spec)
    # every step, reconcile and gate too: a closed interval only; a control-plane step looks at
    # no region's storage or inputs (a region that is down must not keep the gate from deciding)
    preflight(spec, payload.interval, [] if payload.region is None else [payload.region], root=payload.root,
              allow_open=payload.allow_open)
    iv, root = payload.interval, payload.root
    if payload.step in REGION_STEPS:
        assert payload.region is not None  # checked above
        region = payload.region
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
    if payload.step == "reconcile":
        checks = reconcile_step(spec, iv, root=root, run_id=payload.run_id)
        return {"checks": len(checks), "blocking": sum(c.blocking for c in checks)}
    decision = gate_step(spec, iv, root=root, run_id=payload.run_id, actor=payload.actor or None)
    return {"status": decision.status, "generation_id": decision.generation_id, "reasons": decision.reasons}
