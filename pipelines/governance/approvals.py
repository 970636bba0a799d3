"""The two-person rule: an override, a rollback or a model release takes effect only with N distinct approvals.

A *request* (:func:`request_override`, :func:`request_rollback`) is checked exactly as the
decision would be (:func:`~pipelines.certify.operator.plan_override`), then recorded in the
approvals log (``_lockstep/approvals``, one commit per event), bound to exactly what it
decides: pipeline, interval, the generation id and the digest of the decision it acts on (the
block overridden, the generation re-instated) and, for a rollback, the generation in force; a
release request (:func:`request_release`) the model version (or the release re-instated) and
the digest of its tags (feature version, plan hash, suites, generations trained on); an
erasure request (:mod:`pipelines.governance.erasure`) the digest of the subject's values, and
once approved it waits for ``lockstep erase --request`` (state ``approved``) to be carried out.
:func:`approve` records a distinct person's consent (or ``reject=True``, a refusal that closes
the request); with ``governance.approvals`` approvals, none by the requester, each by a holder
of ``approve`` in every region the decision affects, the decision is recorded, by the
requester, with the approvers bound into it (``bindings["approval"]``). Every refusal is one
:class:`~pipelines.errors.GovernanceError`, before anything is written: an unknown or closed
request, an expired one (``governance.approval_expiry`` after the request), self-approval,
the same approver twice, an approver without ``approve`` in an affected region, and a
generation (or what is in force) that changed since the request.

Example::

    req = request_override(spec, alice, interval, generation=block_id, reason="vendor delay")
    approve(spec, bob, req.request_id, reason="checked the feed")
    _, decision = approve(spec, carol, req.request_id, reason="ok")   # the override, recorded
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pipelines.certify import decisions, override, rollback
from pipelines.certify.operator import in_force_for, plan_override, plan_rollback
from pipelines.control.decisions import Decision
from pipelines.control.erasures import erasure_events
from pipelines.control.tables import APPROVALS_TABLE
from pipelines.errors import CertificationError, GovernanceError, SpecError
from pipelines.governance.authority import affected_regions, authorize
from pipelines.governance.identity import Principal
from pipelines.models import releases as release_log
from pipelines.models.registry import models_spec
from pipelines.models.releases import Release, check_promotion, check_rollback, promote
from pipelines.models.releases import rollback as release_rollback
from pipelines.spec import GovernanceSpec, Interval, PipelineSpec

APPROVALS = APPROVALS_TABLE.name


@dataclass
class Request:
    """A pending (or closed) request for a decision, folded from the approvals log."""

    request_id: str
    pipeline: str
    action: str  # override | rollback | release | erase
    interval: str
    generation_id: str
    digest: str  # of the decision acted on (the block, the generation re-instated)
    target: str  # that decision's id
    regions: list[str]
    requester: str
    reason: str
    params: dict[str, Any]
    requested_at: datetime
    expires_at: datetime
    log_version: int
    approvals: list[dict[str, Any]] = field(default_factory=list)
    rejection: dict[str, Any] | None = None
    decision_id: str | None = None

    def state(self, now: datetime | None = None) -> str:
        if self.decision_id:
            return "decided"
        if self.rejection:
            return "rejected"
        if self.action == "erase" and len(self.approvals) >= int(self.params.get("approvals_needed") or 0) > 0:
            # carried out by `lockstep erase --request` with the values (never stored): until expiry
            return "expired" if (now or datetime.now(UTC)) >= self.expires_at else "approved"
        return "expired" if (now or datetime.now(UTC)) >= self.expires_at else "pending"

    @property
    def approvers(self) -> list[str]:
        return [a["who"] for a in self.approvals]

    def as_json(self) -> dict[str, Any]:
        return {"request_id": self.request_id, "pipeline": self.pipeline, "action": self.action,
                "interval": self.interval, "generation_id": self.generation_id, "digest": self.digest,
                "target": self.target, "regions": self.regions, "requester": self.requester, "reason": self.reason,
                "params": self.params, "requested_at": self.requested_at, "expires_at": self.expires_at,
                "approvals": self.approvals, "rejection": self.rejection, "decision_id": self.decision_id,
                "state": self.state(), "log_version": self.log_version}


def governance_of(spec: PipelineSpec) -> GovernanceSpec:
    """The spec's governance (an ungoverned spec's requests follow the defaults: 2 approvals, 24h)."""
    return spec.governance or GovernanceSpec()


def _uri(spec: PipelineSpec, root: str | None) -> str:
    return spec.lockstep_uri(APPROVALS, root)


def requests(spec: PipelineSpec, *, root: str | None = None) -> list[Request]:
    """Every request, oldest first, with its approvals, rejection and resulting decision."""
    opts = spec.control_options()
    frame = APPROVALS_TABLE.scan(APPROVALS_TABLE.open(_uri(spec, root), opts), opts).collect().sort("log_version")
    out: dict[str, Request] = {}
    for row in frame.iter_rows(named=True):
        if row["event"] == "request":
            out[row["request_id"]] = Request(
                request_id=row["request_id"], pipeline=row["pipeline"], action=row["action"],
                interval=row["interval"], generation_id=row["generation_id"], digest=row["digest"],
                target=row["target"], regions=json.loads(row["regions"]), requester=row["who"], reason=row["reason"],
                params=json.loads(row["params"] or "{}"), requested_at=row["at"], expires_at=row["expires_at"],
                log_version=row["log_version"])
        elif (req := out.get(row["request_id"])) is not None:
            event = {"who": row["who"], "reason": row["reason"], "at": row["at"], "log_version": row["log_version"]}
            if row["event"] == "approve":
                req.approvals.append(event)
            elif row["event"] == "reject":
                req.rejection = event
    if out:
        for d in decisions(spec, root=root):
            req_id = (d.bindings.get("approval") or {}).get("request")
            if req_id in out:
                out[req_id].decision_id = d.decision_id
        if any(r.action == "erase" for r in out.values()):
            for e in erasure_events(spec, root=root):
                if e["event"] == "erase" and e["request_id"] in out:
                    out[e["request_id"]].decision_id = e["erasure_id"]
        if any(r.action == "release" for r in out.values()):
            for rel in release_log(spec, root=root):
                req_id = (rel.approval or {}).get("request")
                if req_id in out:
                    out[req_id].decision_id = rel.release_id
    return list(out.values())


def find_request(spec: PipelineSpec, request_id: str, *, root: str | None = None) -> Request:
    for req in requests(spec, root=root):
        if req.request_id == request_id:
            return req
    raise GovernanceError(f"{spec.name}: no request {request_id!r} (`lockstep requests {spec.command_ref}` lists them)",
                          status=404)


def _append(spec: PipelineSpec, root: str | None, **fields: Any) -> int:
    now = datetime.now(UTC)

    def row(v: int) -> dict[str, Any]:
        request_id = fields.get("request_id") or f"req-{v}"
        return {"pipeline": spec.name, "at": now, "log_version": v, "params": "{}", "regions": "[]", "roles": "[]",
                **fields, "request_id": request_id}

    return APPROVALS_TABLE.append_in_order(_uri(spec, root), row, spec.control_options())


def _acted_on(spec: PipelineSpec, planned: Decision, root: str | None) -> Decision:
    """The logged decision a planned override or rollback acts on (its ``target``)."""
    return next(d for d in decisions(spec, root=root) if d.decision_id == planned.target)


def _record_request(spec: PipelineSpec, principal: Principal, action: str, planned: Decision, reason: str,
                    params: dict[str, Any], root: str | None) -> Request:
    acted_on = _acted_on(spec, planned, root)
    regions = affected_regions(spec, acted_on, action)
    authorize(spec, principal, action, regions)
    gov = governance_of(spec)
    now = datetime.now(UTC)
    v = _append(spec, root, event="request", action=action, interval=planned.interval,
                generation_id=planned.generation_id, digest=acted_on.digest, target=acted_on.decision_id,
                regions=json.dumps(regions), who=principal.identity, roles=json.dumps(sorted(principal.roles)),
                reason=reason, params=json.dumps(params, default=str), expires_at=now + gov.approval_expiry)
    return find_request(spec, f"req-{v}", root=root)


def request_override(spec: PipelineSpec, principal: Principal, interval: Interval, *, generation: str, reason: str,
                     until: datetime | None = None, reinstate_older: bool = False, root: str | None = None) -> Request:
    """Request an override of the interval's blocked ``generation`` (checked as the override would be).

    Authority first: a user without ``override`` in the regions the block affects (every
    region, when no such block exists) is refused before learning anything about the log."""
    named = [d for d in decisions(spec, root=root)
             if d.interval == interval.key and d.generation_id == generation and d.kind == "gate" and not d.certified]
    authorize(spec, principal, "override",
              affected_regions(spec, named[-1], "override") if named else list(spec.regions))
    planned = plan_override(spec, interval, reason=reason, generation=generation, until=until, root=root,
                            reinstate_older=reinstate_older, who=principal.identity)
    params = {"until": until.isoformat() if until else None, "reinstate_older": reinstate_older}
    return _record_request(spec, principal, "override", planned, reason, params, root)


def request_rollback(spec: PipelineSpec, principal: Principal, *, to: str, reason: str, replacing: str | None = None,
                     root: str | None = None, scope: str = "interval") -> Request:
    """Request a rollback to generation ``to`` (of its interval; ``scope="pipeline"``: the
    pipeline's generation in force), bound to what it replaces now: the interval's generation
    in force, or the pipeline's (authority first: a rollback affects every region)."""
    authorize(spec, principal, "rollback", spec.regions)
    planned = plan_rollback(spec, to, reason=reason, root=root, replacing=replacing, who=principal.identity,
                            scope=scope)
    in_force = in_force_for(spec, scope, planned.interval, decisions(spec, root=root))
    params = {"in_force": None if in_force is None else in_force.generation_id, "scope": scope}
    return _record_request(spec, principal, "rollback", planned, reason, params, root)


def _release_binding(spec: PipelineSpec, params: dict[str, Any], reason: str, root: str | None
                     ) -> tuple[str, str, str]:
    """What a release request is bound to, checked as the release would be: (the model version
    or the release re-instated, its target, the digest of the model version's tags)."""
    if params["kind"] == "promote":
        version = str(params["version"])
        tags = check_promotion(spec, version, effective_from=params["effective_from"], why=reason, root=root)
        target = f"{models_spec(spec).name}:v{version}"
        acted_on = version
    else:
        release, tags = check_rollback(spec, to=params["to"], effective_from=params["effective_from"], why=reason,
                                       root=root)
        target = acted_on = release.release_id
    digest = hashlib.sha256(json.dumps(tags, sort_keys=True).encode()).hexdigest()[:32]
    return acted_on, target, digest


def request_release(spec: PipelineSpec, principal: Principal, *, kind: str, effective_from: str | None, reason: str,
                    version: str | None = None, to: str | None = None, root: str | None = None) -> Request:
    """Request a model release (``kind`` promote: model ``version``; rollback: release ``to``)
    in every region from ``effective_from``, checked as the release would be, bound to the
    model version's tags by digest."""
    if kind not in ("promote", "rollback") or (kind == "promote" and not version) or (kind == "rollback" and not to):
        raise GovernanceError(f"{spec.name}: a release request is a promote (of a model version) or a rollback "
                              "(to a release id)", status=422)
    params = {"kind": kind, "version": version, "to": to, "effective_from": effective_from}
    regions = list(spec.regions)
    authorize(spec, principal, "release", regions)  # authority first: a release affects every region
    try:
        acted_on, target, digest = _release_binding(spec, params, reason, root)
    except (CertificationError, SpecError) as exc:
        raise GovernanceError(exc.message, status=409) from None
    now = datetime.now(UTC)
    v = _append(spec, root, event="request", action="release", interval=effective_from, generation_id=acted_on,
                digest=digest, target=target, regions=json.dumps(regions), who=principal.identity,
                roles=json.dumps(sorted(principal.roles)), reason=reason, params=json.dumps(params),
                expires_at=now + governance_of(spec).approval_expiry)
    return find_request(spec, f"req-{v}", root=root)


def _still_bound(spec: PipelineSpec, req: Request, root: str | None) -> None:
    """Refuse (409) when what the request decides on changed since it was made."""
    if req.action == "erase":  # bound to its values' digest, checked when it is carried out
        return
    if req.action == "release":
        try:
            bound, _, digest = _release_binding(spec, req.params, req.reason, root)
        except (CertificationError, SpecError) as exc:
            raise GovernanceError(f"{spec.name}: {req.request_id} is void: the release would now be refused "
                                  f"({exc.message}); request again", status=409) from None
        if digest != req.digest:
            raise GovernanceError(f"{spec.name}: {req.request_id} is void: {bound} is bound to digest {digest}, "
                                  f"the request approved {req.digest}; request again", status=409)
        return
    try:
        planned = _plan(spec, req, root=root, who=req.requester, approval=None)
        acted_on = _acted_on(spec, planned, root)
    except CertificationError as exc:  # the decision itself would now be refused: a newer decision intervened
        raise GovernanceError(f"{spec.name}: {req.request_id} is void: {req.interval} changed since the request "
                              f"({exc}); request again after reviewing it", status=409) from None
    if (acted_on.decision_id, acted_on.digest) != (req.target, req.digest):
        raise GovernanceError(
            f"{spec.name}: {req.request_id} is void: it approves generation {req.generation_id} (digest "
            f"{req.digest}), but {req.interval} now stands on {acted_on.generation_id} (digest {acted_on.digest}, "
            f"log version {acted_on.log_version}); request again after reviewing it", status=409)


def _plan(spec: PipelineSpec, req: Request, *, root: str | None, who: str, approval: dict[str, Any] | None,
          record: bool = False) -> Decision:
    """The request's decision: planned (checked, unrecorded), or with ``record`` made."""
    if req.action == "override":
        until = req.params.get("until")
        kwargs: dict[str, Any] = {
            "reason": req.reason, "generation": req.generation_id, "root": root, "who": who, "approval": approval,
            "until": datetime.fromisoformat(until) if until else None,
            "reinstate_older": bool(req.params.get("reinstate_older"))}
        interval = spec.interval_at(req.interval)
        return override(spec, interval, **kwargs) if record else plan_override(spec, interval, **kwargs)
    fn = rollback if record else plan_rollback
    replacing = req.params.get("in_force")
    scope = req.params.get("scope", "pipeline")  # requests made before rollbacks had a scope were pipeline-wide
    if replacing is None:  # nothing was in force at the request: anything in force now changed it
        now_in_force = in_force_for(spec, scope, req.interval, decisions(spec, root=root))
        if now_in_force is not None:
            raise GovernanceError(f"{spec.name}: {req.request_id} is void: {now_in_force.generation_id} came in "
                                  "force after the request; request again after reviewing it", status=409)
    return fn(spec, req.generation_id, reason=req.reason, root=root, replacing=replacing, who=who, approval=approval,
              scope=scope)


def approve(spec: PipelineSpec, principal: Principal, request_id: str, *, reason: str, reject: bool = False,
            root: str | None = None) -> tuple[Request, Decision | Release | None]:
    """Approve (or reject) a request; the decision when this approval completes it.

    Refused, before anything is written: an unknown request (404), a closed or expired one,
    self-approval, the same approver twice, an approver without ``approve`` in every region
    the request affects (403), and a request whose generation changed since (409)."""
    if not reason.strip():
        raise GovernanceError(f"{spec.name}: an approval needs a reason (--reason)", status=422)
    gov = governance_of(spec)
    req = find_request(spec, request_id, root=root)
    authorize(spec, principal, "approve", req.regions)  # authority first: nothing else is told to an outsider
    state = req.state(datetime.now(UTC))
    verb = "reject" if reject else "approve"
    if state == "expired":
        raise GovernanceError(
            f"{spec.name}: {request_id} expired at {req.expires_at:%Y-%m-%d %H:%M:%S} UTC (governance.approval_expiry "
            f"{gov.approval_expiry}); its approvals ({', '.join(req.approvers) or 'none'}) no longer count: "
            "request again", status=409)
    if state != "pending":
        raise GovernanceError(f"{spec.name}: {request_id} is {state}: nothing to {verb}", status=409)
    if principal.name == req.requester.split(":", 1)[-1]:
        raise GovernanceError(f"{spec.name}: {principal.identity} requested {request_id}: a requester cannot "
                              f"{verb} their own request; it needs {gov.approvals} other person(s)", status=403)
    if any(a.split(":", 1)[-1] == principal.name for a in req.approvers):
        raise GovernanceError(f"{spec.name}: {principal.identity} approved {request_id} already: it needs "
                              f"{gov.approvals} distinct approvers", status=409)
    _still_bound(spec, req, root)
    _append(spec, root, request_id=request_id, event=verb, action=req.action, interval=req.interval,
            generation_id=req.generation_id, digest=req.digest, target=req.target,
            regions=json.dumps(req.regions), who=principal.identity, roles=json.dumps(sorted(principal.roles)),
            reason=reason, expires_at=req.expires_at)
    req = find_request(spec, request_id, root=root)
    if reject or len(req.approvals) < gov.approvals or req.action == "erase":
        return req, None
    approval = {"request": request_id, "requester": req.requester, "approvers": req.approvers, "digest": req.digest}
    if req.action == "release":
        p = req.params
        release = (promote(spec, p["version"], effective_from=p["effective_from"], why=req.reason, root=root,
                           who=req.requester, approval=approval) if p["kind"] == "promote" else
                   release_rollback(spec, to=p["to"], effective_from=p["effective_from"], why=req.reason, root=root,
                                    who=req.requester, approval=approval))
        req.decision_id = release.release_id
        return req, release
    decision = _plan(spec, req, root=root, who=req.requester, approval=approval, record=True)
    req.decision_id = decision.decision_id
    return req, decision


def submit(spec: PipelineSpec, principal: Principal, *, action: str, reason: str, interval: str | None = None,
           generation: str | None = None, until: datetime | None = None, reinstate_older: bool = False,
           to: str | None = None, replacing: str | None = None, kind: str | None = None, version: str | None = None,
           effective_from: str | None = None, root: str | None = None, scope: str = "interval",
           erase: dict[str, Any] | None = None) -> Request:
    """A request from its fields (the CLI's and the plugin API's one entry): an ``override``
    names ``interval`` and the blocked ``generation``, a ``rollback`` the generation ``to`` (and
its ``scope``: ``interval``, or ``pipeline`` to move the pipeline's generation in force), a
    ``release`` its ``kind`` (promote a model ``version``, or roll back ``to`` a release id)
    and ``effective_from``."""
    if action == "release":
        if not effective_from:
            raise GovernanceError(f"{spec.name}: a release request names effective_from", status=422)
        return request_release(spec, principal, kind=kind or "", effective_from=effective_from, reason=reason,
                               version=version, to=to, root=root)
    if action == "override":
        if not interval or not generation:
            raise GovernanceError(f"{spec.name}: an override request names the interval and the blocked generation "
                                  "(interval, generation)", status=422)
        return request_override(spec, principal, spec.interval_at(interval), generation=generation, reason=reason,
                                until=until, reinstate_older=reinstate_older, root=root)
    if action == "rollback":
        if not to:
            raise GovernanceError(f"{spec.name}: a rollback request names the generation to re-instate (to)", status=422)
        if scope not in ("interval", "pipeline"):
            raise GovernanceError(f"{spec.name}: a rollback's scope is interval or pipeline, got {scope!r}", status=422)
        return request_rollback(spec, principal, to=to, reason=reason, replacing=replacing, root=root, scope=scope)
    if action == "erase":
        from pipelines.governance.erasure import request_erase

        if not erase:
            raise GovernanceError(f"{spec.name}: an erasure request names the column and the values", status=422)
        return request_erase(spec, principal, reason=reason, root=root, **erase)
    raise GovernanceError(f"{spec.name}: action {action!r}: requests are for override, rollback, release or erase",
                          status=422)
