"""The decision log read from a few columns (what the gate folds for its drift window) folds to
exactly what the whole log folds to: gates, a block, an override that expired, a rollback of one
interval, a pipeline-wide rollback, on a real Delta log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pipelines.certify.read import active_certifications, active_entries
from pipelines.control.decisions import (
    Decision,
    decisions,
    decisions_by_id,
    log_entries,
    record_decision,
)
from pipelines.control.tables import CERTIFICATIONS_TABLE
from pipelines.errors import CertificationError
from pipelines.generation import Generation
from pipelines.spec import Interval, PipelineSpec
from pipelines.storage import append_rows
from tests.conftest import make_spec


def _decide(spec: PipelineSpec, day: str, status: str, kind: str = "gate", *, version: int = 1,
            expires_at: datetime | None = None, scope: str | None = None) -> Decision:
    interval = Interval.for_date(datetime.fromisoformat(day).date())
    bindings: dict[str, object] = {"suites": {}, "inputs": {}, "files": {}}
    if scope is not None:
        bindings["reviewed"] = {"scope": scope}
    now = datetime.now(UTC)
    d = Decision(decision_id=f"{spec.name}:{day}:{now.strftime('%H%M%S%f')}:{kind}:{status}", pipeline=spec.name,
                 interval=interval.key, interval_start=interval.start,
                 generation=Generation(interval.key, {"eu-west/raw/transactions": version}), status=status,
                 kind=kind, expires_at=expires_at, bindings=bindings)
    return record_decision(spec, d)


@pytest.fixture
def spec(root: str) -> PipelineSpec:
    return make_spec(storage={"root": root})


def test_entries_fold_like_the_whole_log(spec: PipelineSpec) -> None:
    assert log_entries(spec) == [] and active_entries(spec) == {}
    past = datetime.now(UTC) - timedelta(days=1)
    _decide(spec, "2026-01-02", "certified", version=1)
    _decide(spec, "2026-01-03", "certified", version=1)
    _decide(spec, "2026-01-03", "blocked", version=2)
    _decide(spec, "2026-01-04", "certified", "override", version=3, expires_at=past)  # expired: no longer counts
    _decide(spec, "2026-01-05", "certified", version=1)
    _decide(spec, "2026-01-05", "certified", version=2)
    _decide(spec, "2026-01-05", "certified", "rollback", version=1, scope="interval")
    _decide(spec, "2026-01-06", "certified", version=4)
    _decide(spec, "2026-01-03", "certified", "rollback", version=1, scope="pipeline")  # revokes 01-05 and 01-06

    whole = decisions(spec)
    entries = log_entries(spec)
    assert [e.decision_id for e in entries] == [d.decision_id for d in whole]
    assert [(e.certified, e.pipeline_wide, e.live()) for e in entries] == \
        [(d.certified, d.pipeline_wide, d.live()) for d in whole]
    folded = {k: d.decision_id for k, d in active_certifications(spec).items()}
    light = {k: e.decision_id for k, e in active_entries(spec).items()}
    assert light == folded
    assert sorted(light) == ["2026-01-02", "2026-01-03"]  # the pipeline-wide rollback revoked the later ones

    read = decisions_by_id(spec, list(light.values()))
    assert {d.interval: d.generation.members for d in read.values()} == \
        {k: d.generation.members for k, d in active_certifications(spec).items()}


def test_entries_refuse_a_misnumbered_log(spec: PipelineSpec) -> None:
    first = _decide(spec, "2026-01-02", "certified")
    uri = spec.lockstep_uri("certifications")
    row = first.to_row()  # the same log version claimed a second time, as a writer outside Lockstep would
    # an ordered table refuses a plain append: written around it
    append_rows(uri, CERTIFICATIONS_TABLE.frame([{**row, "decision_id": "outside"}]), spec.control_options())
    with pytest.raises(CertificationError, match="inconsistent"):
        log_entries(spec)
    with pytest.raises(CertificationError, match="inconsistent"):  # a read by id checks the whole log's numbering
        decisions_by_id(spec, [first.decision_id])
