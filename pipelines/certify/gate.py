"""The gate: certify a generation, or record why it is blocked.

:func:`gate` looks at the interval's recorded reconciliation (its ``generation.snapshot``
names the generation judged and what it is bound to) and appends one decision to the
decision log (:mod:`pipelines.control.decisions`): certified when no result blocks and every
binding was verified, else blocked with every reason. It never certifies blind: no
reconciliation, no generation or a missing binding blocks. Each decision recorded is one
line in the log of :data:`log` (and, for a block, one line summing up its reasons).

Example::

    decision = gate(spec, interval, results, run_id=run_id, who="airflow:admin")
    decision.status, decision.log_version
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, datetime
from typing import Any

from pipelines.control.decisions import Decision, decision_id, record_decision
from pipelines.control.results import CheckResult
from pipelines.generation import Generation, generation_of
from pipelines.spec import Interval, PipelineSpec
from pipelines.spec.settings import settings
from pipelines.storage import OpenTables

log = logging.getLogger(__name__)

#: what every certification is bound to (see :attr:`Decision.bindings`)
BINDINGS = ("suites", "inputs", "files")


def logged(decision: Decision) -> Decision:
    """Log one line about a decision just recorded (and one summing up a block's reasons)."""
    log.info("%s: %s %s of %s: %s, generation %s, log version %s, by %s", decision.pipeline, decision.kind,
             decision.status, decision.interval, decision.decision_id, decision.generation_id, decision.log_version,
             decision.who)
    if not decision.certified and decision.reasons:
        checks = sorted({str(r.get("check_id")) for r in decision.reasons})
        log.warning("%s: %s blocked by %d reason(s): %s", decision.pipeline, decision.interval, len(decision.reasons),
                    ", ".join(checks[:10]) + (f" and {len(checks) - 10} more" if len(checks) > 10 else ""))
    return decision


def bindings_hash(suites: dict[str, str]) -> str:
    """One hash of the suites a decision is bound to ({table: suite sha})."""
    if not suites:
        return ""
    return hashlib.sha256(json.dumps(suites, sort_keys=True).encode()).hexdigest()[:16]


def reasons_of(results: list[CheckResult]) -> list[dict[str, Any]]:
    return [
        {"check_id": r.check_id, "check_type": r.check_type, "region": r.region, "table": r.table,
         "message": r.message, "observed": r.observed, "threshold": r.threshold}
        for r in results if r.blocking
    ]


def gate(
    spec: PipelineSpec, interval: Interval, results: list[CheckResult], *, root: str | None = None,
    run_id: str = "", generation: Generation | None = None, tables: OpenTables | None = None,
    who: str | None = None,
) -> Decision:
    """Certify ``generation`` when no result blocks, else record the block.

    ``generation`` is what the reconciliation judged (default: the ``generation.snapshot`` in
    ``results``, which the evidence store assembled); without one,
    or with no reconciliation result at all, the gate blocks: it never certifies blind.
    ``who``: the deciding identity (an Airflow task's ``airflow:<user>``; default: the
    settings' identity, :meth:`~pipelines.spec.settings.Settings.who`)."""
    reasons = reasons_of(results)
    generation = generation or generation_of(results)
    if generation is None:
        generation = Generation(interval.key, {})
        reasons.append({"check_id": "generation.judged", "check_type": "generation", "region": "*", "table": "*",
                        "message": f"no reconciliation of {interval.key} in run {run_id or '(none)'}: nothing judged, "
                                   "nothing certified", "observed": None, "threshold": None})
    gen = generation
    missing = [
        f"{region}/{t.layer}/{t.name}" for region in spec.regions for t in spec.tables
        if t.layer != "quarantine" and f"{region}/{t.layer}/{t.name}" not in gen.members
    ]
    if missing and not any(r["check_id"] in ("generation.complete", "generation.judged") for r in reasons):
        reasons.append({"check_id": "generation.complete", "check_type": "generation", "region": "*",
                        "table": "*", "message": f"tables missing: {missing}", "observed": missing, "threshold": []})
    snapshot = next((r for r in results if r.check_id == "generation.snapshot"), None)
    bindings: dict[str, Any] = dict(snapshot.details.get("bindings") or {}) if snapshot is not None else {}
    unbound = [k for k in BINDINGS if k not in bindings]
    if unbound and not reasons:  # fail closed: a generation is certified only with every binding verified
        reasons.append({"check_id": "generation.bound", "check_type": "generation", "region": "*", "table": "*",
                        "message": f"the reconciliation of {interval.key} recorded no {', '.join(unbound)} binding: "
                                   "nothing certified unbound; re-run `lockstep certify`",
                        "observed": unbound, "threshold": []})
    now = datetime.now(UTC)
    decision = Decision(
        decision_id=decision_id(spec, interval.key, now),
        pipeline=spec.name, interval=interval.key, interval_start=interval.start, generation=gen,
        status="blocked" if reasons else "certified", kind="gate", reasons=reasons, who=who or settings().who(),
        decided_at=now, run_id=run_id, spec_hash=spec.spec_hash(),
        suites_hash=bindings_hash(bindings.get("suites") or {}), bindings=bindings,
    )
    return logged(record_decision(spec, decision, root=root, tables=tables))
