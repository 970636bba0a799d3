"""Audit export: one OpenLineage RunEvent per decision, through the OpenLineage provider's transport.

The decisions an auditor asks about live in four append-only control logs: the decision log
(``certifications``: gate, override, rollback), the approvals log (``approvals``: request,
approve, reject), the release log (``releases``: promote, rollback) and the erasure log
(``erasures``: erase per region, recertify, removal per region; status names the region).
:func:`audit_rows` reads them as one timeline (each log in its own commit order, ``log_version``);
:func:`export_audit` sends each row not exported before as exactly one ``COMPLETE`` RunEvent
through the transport Airflow's OpenLineage provider is configured with (``[openlineage]
transport``: http to Marquez, a file, Kafka ...), then records it in the control table
``audit_exports``, so the next export sends only what is new. A run's id is derived from the
row (uuid5 of pipeline, log and log version): a re-sent event (a crash between the send and
the record) carries the same id, for the receiver to deduplicate.

Each event's job is ``<pipeline>.<log>.<kind>`` in namespace ``lockstep://<pipeline>``, its
output the control log as a dataset, and its run facet ``lockstep_decision``
(:class:`LockstepDecisionRunFacet`): log, log version, kind, status, actor, approvers,
reason, interval, generation, from and to, release, digest and the id of the decision.
:func:`timeline_from_events` rebuilds the timeline from exported events alone.

Inside Airflow, a decision is exported when it is made (:func:`export_decided`: the gate task,
the Lockstep API's write routes, the release DAG's promotion), once a transport is configured;
``lockstep audit`` then sends only what that could not. Enable it (``lockstep airflow up`` needs
nothing more than the transport)::

    AIRFLOW__OPENLINEAGE__TRANSPORT='{"type": "file", "log_file_path": "audit.jsonl", "append": true}'
    lockstep audit fraud_features --date 2026-01-02
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any

import attr
from openlineage.client.event_v2 import Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.generated.base import RunFacet

from pipelines.airflow.datasets import dataset_name
from pipelines.control.tables import (
    APPROVALS_TABLE,
    AUDIT_EXPORTS_TABLE,
    CERTIFICATIONS_TABLE,
    ERASURES_TABLE,
    RELEASES_TABLE,
)
from pipelines.errors import LockstepError
from pipelines.spec import PipelineSpec

__all__ = ["FACET", "LockstepDecisionRunFacet", "audit_rows", "export_audit", "export_decided",
           "timeline_from_events"]

log = logging.getLogger(__name__)

#: the run facet's key on every exported event
FACET = "lockstep_decision"
PRODUCER = "https://github.com/apache/airflow/tree/providers-openlineage/lockstep"
#: the fields of a timeline row, in the facet
FIELDS = ("log", "log_version", "kind", "status", "actor", "approvers", "reason", "interval", "generation",
          "from_generation", "to_generation", "release", "digest", "decision_id", "decided_at")


@attr.define
class LockstepDecisionRunFacet(RunFacet):
    """One decision of Lockstep's control logs: who decided what, on which generation or release."""

    log: str
    log_version: int
    kind: str
    status: str
    actor: str
    approvers: list[str]
    reason: str
    interval: str
    generation: str | None
    from_generation: str | None
    to_generation: str | None
    release: str | None
    digest: str | None
    decision_id: str
    decided_at: str

    @staticmethod
    def _get_schema() -> str:
        return "urn:lockstep:openlineage:facet:LockstepDecisionRunFacet:1"


class AuditError(LockstepError):
    """The audit export cannot send: no OpenLineage transport, or the transport failed."""


def _scan(spec: PipelineSpec, table: Any, root: str | None) -> list[dict[str, Any]]:
    uri, opts = table.uri(spec.control_root(root), spec.name), spec.control_options()
    frame = table.scan(table.open(uri, opts), opts).collect()
    return sorted(frame.iter_rows(named=True), key=lambda r: r["log_version"])


def _row(**fields: Any) -> dict[str, Any]:
    out = {k: fields.get(k) for k in FIELDS}
    out["approvers"] = list(fields.get("approvers") or [])
    out["decided_at"] = fields["decided_at"].astimezone(UTC).isoformat()
    return out


def audit_rows(spec: PipelineSpec, *, root: str | None = None, day: date | None = None) -> list[dict[str, Any]]:
    """Every decision of the four logs (each in its commit order), optionally of one UTC day."""
    rows = []
    for r in _scan(spec, CERTIFICATIONS_TABLE, root):
        bindings = json.loads(r["bindings"] or "{}")
        reviewed = bindings.get("reviewed") or {}
        rows.append(_row(
            log="certifications", log_version=r["log_version"], kind=r["kind"], status=r["status"], actor=r["who"],
            approvers=(bindings.get("approval") or {}).get("approvers"), reason=r["reason"] or "",
            interval=r["interval"], generation=r["generation_id"],
            from_generation=reviewed.get("in_force") if r["kind"] == "rollback" else None,
            to_generation=r["generation_id"] if r["kind"] != "gate" else None, release=None, digest=r["digest"],
            decision_id=r["decision_id"], decided_at=r["decided_at"]))
    for r in _scan(spec, APPROVALS_TABLE, root):
        rows.append(_row(
            log="approvals", log_version=r["log_version"], kind=r["event"], status=r["action"], actor=r["who"],
            reason=r["reason"] or "", interval=r["interval"], generation=r["generation_id"], digest=r["digest"],
            decision_id=r["request_id"], decided_at=r["at"]))
    for r in _scan(spec, RELEASES_TABLE, root):
        rows.append(_row(
            log="releases", log_version=r["log_version"], kind=r["kind"], status="released", actor=r["who"],
            reason=r["why"] or "", interval=r["effective_from"], from_generation=None, release=r["release_id"],
            to_generation=None, decision_id=r["release_id"], decided_at=r["released_at"],
            generation=r["model_version"]))
    for r in _scan(spec, ERASURES_TABLE, root):
        intervals = json.loads(r["intervals"] or "{}")
        rows.append(_row(
            log="erasures", log_version=r["log_version"], kind=r["event"], status=r["region"], actor=r["who"],
            approvers=json.loads(r["approvers"] or "[]"), reason=r["reason"] or "",
            interval=",".join(sorted(intervals)) if intervals else "*", generation=None, digest=r["values_digest"],
            decision_id=r["erasure_id"], decided_at=r["at"]))
    return [r for r in rows if day is None or r["decided_at"][:10] == day.isoformat()]


def _event(spec: PipelineSpec, row: dict[str, Any], root: str | None) -> RunEvent:
    run_id = uuid.uuid5(uuid.NAMESPACE_URL, f"lockstep://{spec.name}/{row['log']}/{row['log_version']}")
    namespace, name = dataset_name(spec.lockstep_uri(row["log"], root))
    facet = LockstepDecisionRunFacet(**row, producer=PRODUCER)
    return RunEvent(eventType=RunState.COMPLETE, eventTime=row["decided_at"], producer=PRODUCER,
                    run=Run(runId=str(run_id), facets={FACET: facet}),
                    job=Job(namespace=f"lockstep://{spec.name}", name=f"{spec.name}.{row['log']}.{row['kind']}"),
                    inputs=[], outputs=[OutputDataset(namespace=namespace, name=name)])


def _client() -> Any:
    """The OpenLineage client of Airflow's OpenLineage provider (its configured transport)."""
    from airflow.providers.openlineage import conf
    from airflow.providers.openlineage.plugins.adapter import OpenLineageAdapter
    from openlineage.client.transport.noop import NoopTransport

    if conf.is_disabled():
        raise AuditError("OpenLineage is disabled in Airflow's configuration ([openlineage] disabled, or no "
                         "transport): set AIRFLOW__OPENLINEAGE__TRANSPORT to export the audit trail", retryable=False,
                         unconfigured=True)
    # the client announces its transport at INFO, which Airflow's logging prints on stdout
    # (where `lockstep audit --json` writes its one document): the export says what it sent itself
    logging.getLogger("openlineage.client").setLevel(logging.WARNING)
    client = OpenLineageAdapter().get_or_create_openlineage_client()
    if client.transport is None or client.transport.kind == NoopTransport.kind:
        raise AuditError("no OpenLineage transport is configured ([openlineage] transport): nothing would be sent; "
                         "set AIRFLOW__OPENLINEAGE__TRANSPORT",
                         retryable=False, unconfigured=True)
    return client


def export_audit(spec: PipelineSpec, *, root: str | None = None, day: date | None = None) -> list[dict[str, Any]]:
    """Send one RunEvent per decision not exported before (of ``day``, when given); the rows sent."""
    uri, opts = AUDIT_EXPORTS_TABLE.uri(spec.control_root(root), spec.name), spec.control_options()
    done = {(r["log"], r["log_version"]) for r in AUDIT_EXPORTS_TABLE.scan(AUDIT_EXPORTS_TABLE.open(uri, opts), opts)
            .collect().iter_rows(named=True)}
    todo = [r for r in audit_rows(spec, root=root, day=day) if (r["log"], r["log_version"]) not in done]
    if not todo:
        return []
    client = _client()
    sent = []
    try:
        for row in todo:
            event = _event(spec, row, root)
            client.emit(event)
            sent.append({"log": row["log"], "log_version": row["log_version"], "run_id": event.run.runId,
                         "exported_at": datetime.now(UTC)})
    except Exception as exc:
        raise AuditError(f"{spec.name}: the OpenLineage transport failed after {len(sent)} of {len(todo)} event(s): "
                         f"{exc}") from exc
    finally:
        if sent:
            AUDIT_EXPORTS_TABLE.append(uri, sent, opts)
    return todo


def export_decided(spec: PipelineSpec, *, root: str | None = None) -> list[dict[str, Any]]:
    """At decision time (the gate task, the governed write routes, the release DAG): send what
    :func:`export_audit` has not sent yet; the rows sent. It never fails the decision, already
    recorded: without a transport it logs one line at INFO, on any other failure one WARNING
    (``lockstep audit`` sends the rest later, each row once)."""
    try:
        return export_audit(spec, root=root)
    except AuditError as exc:
        if exc.context.get("unconfigured"):
            log.info("%s: decisions not exported to OpenLineage now: %s", spec.name, exc.message)
        else:
            log.warning("%s: %s; `lockstep audit` sends them later", spec.name, exc.message)
    except LockstepError as exc:
        log.warning("%s: decisions not exported to OpenLineage now: %s; `lockstep audit` sends them later",
                    spec.name, exc.message)
    except Exception as exc:  # noqa: BLE001 - the decision stands; the export is caught up later
        log.warning("%s: decisions not exported to OpenLineage now (%s: %s); `lockstep audit` sends them later",
                    spec.name, type(exc).__name__, exc)
    return []


def timeline_from_events(events: Iterable[dict[str, Any]], pipeline: str) -> list[dict[str, Any]]:
    """The decision timeline rebuilt from exported OpenLineage events (JSON) alone: one row per
    event of ``pipeline``, each log in its commit order."""
    rows = []
    for event in events:
        facet = ((event.get("run") or {}).get("facets") or {}).get(FACET)
        if facet is None or event.get("job", {}).get("namespace") != f"lockstep://{pipeline}":
            continue
        rows.append({k: facet.get(k) for k in FIELDS})
    order = {"certifications": 0, "approvals": 1, "releases": 2, "erasures": 3}
    return sorted(rows, key=lambda r: (order.get(r["log"], 9), r["log_version"]))
