"""Operator decisions: ``override`` (certify a blocked generation, with a reason) and
``rollback`` (certify an earlier generation of an interval again; ``scope="pipeline"`` also
moves the pipeline's generation in force back to it), each a new audited row of the decision log.

Both are bound to what the operator reviewed (the block's generation id, the generation in
force) and refused when another decision intervened; both record who decided (the identity
given, default the settings' :meth:`~pipelines.spec.settings.Settings.who`), the run id (the
settings' ``run_id``, else a new one) and the reason. Tables are never restored: consumers
time-travel to the versions a decision re-instates.

Example::

    override(spec, interval, reason="late delivery reviewed", generation="2026-01-02.5f3a9c01e2")
    rollback(spec, "2026-01-01.0b7d2e4c19", reason="bad model input on the 2nd")
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pipelines.certify.gate import logged
from pipelines.certify.read import active_certifications, current_certified
from pipelines.control.decisions import Decision, decision_id, decisions, log_order, record_decision
from pipelines.errors import CertificationError
from pipelines.spec import Interval, PipelineSpec
from pipelines.spec.settings import settings


def _manual_run_id(kind: str) -> str:
    """The run id of an operator's decision: the settings' (``LOCKSTEP_RUN_ID``), else a new one."""
    return settings().run_id or f"lockstep__{kind}_{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%f')}"


SCOPES = ("interval", "pipeline")


def rollback(
    spec: PipelineSpec, to: str, *, reason: str, root: str | None = None, run_id: str = "",
    replacing: str | None = None, who: str | None = None, approval: dict[str, Any] | None = None,
    scope: str = "interval",
) -> Decision:
    """Certify an earlier generation of an interval again, as a new audited decision.

    ``to`` is the id of a generation certified before (as ``explain`` and the view show it:
    an interval key does not say which of its generations the operator reviewed). By default
    (``scope="interval"``) it is re-instated for *its interval only*: what consumers read for
    every other interval is unchanged. ``scope="pipeline"`` moves the pipeline's generation in
    force back to it: every later interval stops being in force (until a later gate certifies
    it again); :func:`rollback_changes` states what that changes, for the operator to confirm.
    ``replacing``: the generation the operator saw in force (of the interval; pipeline-wide,
    of the pipeline); when given, the rollback is refused if another decision has put
    something else in force since. The tables themselves are never restored: consumers simply
    time-travel to the re-instated versions. ``approval``: the approvals it took effect with
    (:mod:`pipelines.governance`), bound into the decision.
    """
    decision = plan_rollback(spec, to, reason=reason, root=root, run_id=run_id, replacing=replacing, who=who,
                             approval=approval, scope=scope)
    return logged(record_decision(spec, decision, root=root))


def _rollback_target(spec: PipelineSpec, to: str, log: list[Decision]) -> Decision:
    targets = [d for d in log if d.certified and d.generation_id == to]
    if not targets:
        by_interval = sorted({d.generation_id for d in log if d.certified and d.interval == to})
        if by_interval:
            raise CertificationError(
                f"{spec.name}: --to names a generation, not an interval: {to!r} was certified as "
                f"{', '.join(by_interval)}; name the one you reviewed (`lockstep explain {spec.command_ref} --date {to}`)",
                retryable=False)
        raise CertificationError(f"{spec.name}: no certified generation {to!r} to roll back to; "
                                 f"certified: {sorted({d.generation_id for d in log if d.certified})}", retryable=False)
    return targets[-1]


def active_after(active: dict[str, Decision], target: Decision) -> list[str]:
    """The intervals in force after ``target``'s (what a pipeline-wide rollback to it revokes)."""
    return sorted(k for k, d in active.items() if d.interval_start > target.interval_start)


def in_force_for(spec: PipelineSpec, scope: str, interval: str, log: list[Decision]) -> Decision | None:
    """What a rollback of ``scope`` replaces: the interval's certification in force
    (``interval``), or the pipeline's generation in force (``pipeline``)."""
    if scope == "pipeline":
        return current_certified(spec, log=log)
    return active_certifications(spec, log=log).get(interval)


def rollback_changes(spec: PipelineSpec, to: str, *, scope: str = "interval", root: str | None = None,
                     replacing: str | None = None) -> dict[str, Any]:
    """What a rollback to ``to`` would change (refused as the rollback would be), for the
    operator to confirm: ``{"scope", "interval", "to", "replaces" (the interval's generation
    in force it replaces), "revokes" (intervals that stop being in force: pipeline-wide only),
    "in_force_before", "in_force_after"}`` (the pipeline's generation in force, folded from
    the log with the rollback appended) and ``line``: all that in one sentence."""
    log = decisions(spec, root=root)
    planned = plan_rollback(spec, to, reason="(preview)", root=root, replacing=replacing, scope=scope)
    planned.log_version = max((log_order(d) for d in log), default=-1) + 1
    before = current_certified(spec, log=log)
    after = current_certified(spec, log=[*log, planned])
    reviewed = planned.bindings["reviewed"]
    out = {"scope": scope, "interval": planned.interval, "to": planned.generation_id,
           "replaces": reviewed["replaced"], "revokes": reviewed["revokes"],
           "in_force_before": None if before is None else before.generation_id,
           "in_force_after": None if after is None else after.generation_id}
    revokes = (f"; {len(out['revokes'])} later interval(s) stop being in force: {', '.join(out['revokes'])}"
               if out["revokes"] else "")
    out["line"] = (f"{out['interval']}: {out['to']} replaces {out['replaces'] or 'nothing in force'}; the pipeline's "
                   f"generation in force moves from {out['in_force_before'] or 'nothing'} to "
                   f"{out['in_force_after'] or 'nothing'}{revokes}")
    return out


def plan_rollback(
    spec: PipelineSpec, to: str, *, reason: str, root: str | None = None, run_id: str = "",
    replacing: str | None = None, who: str | None = None, approval: dict[str, Any] | None = None,
    scope: str = "interval",
) -> Decision:
    """The decision :func:`rollback` would record now (refused the same way), unrecorded."""
    if scope not in SCOPES:
        raise CertificationError(f"rollback scope: expected one of {', '.join(SCOPES)}, got {scope!r}")
    if not reason.strip():
        raise CertificationError("rollback needs a reason")
    log = decisions(spec, root=root)
    target = _rollback_target(spec, to, log)
    active = active_certifications(spec, log=log)
    newest = current_certified(spec, log=log)
    own = active.get(target.interval)
    seen = in_force_for(spec, scope, target.interval, log)
    if replacing is not None and (seen is None or seen.generation_id != replacing):
        where = "the pipeline" if scope == "pipeline" else target.interval
        raise CertificationError(
            f"{spec.name}: you reviewed {replacing} in force for {where}, but "
            + (f"{seen.generation_id} ({seen.kind}, log version {seen.log_version})" if seen else "nothing")
            + " is in force now: a newer decision intervened; review it and decide again", retryable=False)
    revoked = active_after(active, target) if scope == "pipeline" else []
    if own is not None and own.generation_id == target.generation_id and not revoked:
        raise CertificationError(f"{spec.name}: {target.generation_id} is already in force for {target.interval}"
                                 + (" and no later interval is" if scope == "pipeline" else "")
                                 + ": nothing to roll back"
                                 + ("" if scope == "pipeline" or not active_after(active, target) else
                                    " (to move the pipeline's generation in force back to it, revoking later "
                                    "intervals: --pipeline-wide)"), retryable=False)
    now = datetime.now(UTC)
    reviewed = {"to": target.generation_id, "to_decision": target.decision_id, "to_digest": target.digest,
                "scope": scope, "replaced": None if own is None else own.generation_id,
                "in_force": None if newest is None else newest.generation_id, "revokes": revoked}
    decision = Decision(
        decision_id=decision_id(spec, target.interval, now), pipeline=spec.name, interval=target.interval,
        interval_start=target.interval_start, generation=target.generation, status="certified", kind="rollback",
        reasons=[], reason=reason, who=who or settings().who(), decided_at=now, run_id=run_id or _manual_run_id("rollback"),
        spec_hash=spec.spec_hash(), suites_hash=target.suites_hash, target=target.decision_id,
        bindings={**target.bindings, "reviewed": reviewed, **({"approval": approval} if approval else {})},
    )
    return decision


def override(
    spec: PipelineSpec, interval: Interval, *, reason: str, generation: str, until: datetime | None = None,
    root: str | None = None, run_id: str = "", reinstate_older: bool = False, who: str | None = None,
    approval: dict[str, Any] | None = None,
) -> Decision:
    """Certify the interval's blocked ``generation`` despite its block, optionally until ``until``.

    Bound to what the operator reviewed: ``generation`` must be the generation of the
    interval's newest decision, a block (``explain`` and the view show its id). Refused when
    another decision came after it: a newer block (override that one, having reviewed it) or
    a certification (the interval was fixed: re-instating the older, blocked generation over
    it needs ``reinstate_older``, and says so). The decision records the reasons it overrides;
    after ``until`` it stops counting and the previous certification of the interval (if
    any) is in force again. ``approval``: the approvals it took effect with, bound into it.
    """
    decision = plan_override(spec, interval, reason=reason, generation=generation, until=until, root=root,
                             run_id=run_id, reinstate_older=reinstate_older, who=who, approval=approval)
    return logged(record_decision(spec, decision, root=root))


def plan_override(
    spec: PipelineSpec, interval: Interval, *, reason: str, generation: str, until: datetime | None = None,
    root: str | None = None, run_id: str = "", reinstate_older: bool = False, who: str | None = None,
    approval: dict[str, Any] | None = None,
) -> Decision:
    """The decision :func:`override` would record now (refused the same way), unrecorded."""
    if not reason.strip():
        raise CertificationError("override needs a reason")
    now = datetime.now(UTC)
    if until is not None:
        until = until if until.tzinfo else until.replace(tzinfo=UTC)
        if until <= now:
            raise CertificationError(f"override expiry {until} is in the past")
    mine = [d for d in decisions(spec, root=root) if d.interval == interval.key]
    if not mine:
        raise CertificationError(f"{spec.name}: no decision about {interval.key} yet; run `lockstep certify` first")
    named = [d for d in mine if d.generation_id == generation and d.kind == "gate" and not d.certified]
    if not named:
        blocks = sorted({d.generation_id for d in mine if not d.certified})
        raise CertificationError(
            f"{spec.name}: {interval.key}: no blocked generation {generation!r} to override"
            + (f" (blocked: {', '.join(blocks)})" if blocks else f": {interval.key} was never blocked"),
            retryable=False)
    last = named[-1]
    after = [d for d in mine if log_order(d) > log_order(last)]
    note = ""
    if after:
        newest = after[-1]
        what = (f"{newest.kind} {newest.status} of {newest.generation_id} (log version {newest.log_version}, "
                f"by {newest.who or 'unknown'})")
        certified_since = [d for d in after if d.certified]
        if not certified_since:
            raise CertificationError(
                f"{spec.name}: {interval.key}: a newer decision intervened after the block of {generation}: {what}; "
                "review it (`lockstep explain`) and override the generation it names", retryable=False)
        if not reinstate_older:
            raise CertificationError(
                f"{spec.name}: {interval.key}: {generation} is older than a certification of the same interval "
                f"({what}); overriding it would re-instate the older, blocked data. Pass --reinstate-older to do "
                "exactly that", retryable=False)
        note = f"re-instates {generation} over the newer {certified_since[-1].generation_id}"
    reviewed = {"blocked_decision": last.decision_id, "blocked_digest": last.digest, "generation": generation,
                "reinstates_older": bool(note), "note": note}
    decision = Decision(
        decision_id=decision_id(spec, interval.key, now), pipeline=spec.name, interval=interval.key,
        interval_start=interval.start, generation=last.generation, status="certified", kind="override",
        reasons=last.reasons, reason=reason, who=who or settings().who(), decided_at=now,
        run_id=run_id or _manual_run_id("override"), spec_hash=spec.spec_hash(), suites_hash=last.suites_hash,
        expires_at=until, target=last.decision_id,
        bindings={**last.bindings, "reviewed": reviewed, **({"approval": approval} if approval else {})},
    )
    return decision
