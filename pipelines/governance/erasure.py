"""Erasure under the two-person rule: a request bound to the subject's digest, approved like
an override, carried out by the one who holds the values.

An erasure affects every region, so the requester needs ``erase`` in every region and each
approver ``approve`` in every region. The request records the column, how many values and
their digest (:func:`~pipelines.control.erasures.values_digest`), never the values: once
``governance.approvals`` distinct people approved it (``lockstep approve``), it is
``approved``, and ``lockstep erase --request <id>`` with the same values carries it out
before the request expires (:func:`approved_request` checks all of this).

Example::

    req = request_erase(spec, alice, column="card_id", digest=d, count=1, reason="GDPR art. 17")
    approve(spec, bob, req.request_id, reason="verified the ticket")   # ... and a second approver
    approved_request(spec, alice, req.request_id, column="card_id", digest=d)
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from pipelines.errors import GovernanceError
from pipelines.governance.approvals import Request, _append, find_request, governance_of
from pipelines.governance.authority import authorize
from pipelines.governance.identity import Principal
from pipelines.spec import PipelineSpec


def request_erase(spec: PipelineSpec, principal: Principal, *, column: str, digest: str, count: int, reason: str,
                  root: str | None = None) -> Request:
    """Record a request to erase ``count`` values (bound by ``digest``) of ``column`` in every region."""
    if not reason.strip():
        raise GovernanceError(f"{spec.name}: an erasure needs a reason (--reason)", status=422)
    regions = list(spec.regions)
    authorize(spec, principal, "erase", regions)
    gov = governance_of(spec)
    params = {"column": column, "values_count": count, "approvals_needed": gov.approvals}
    v = _append(spec, root, event="request", action="erase", interval="*", generation_id=column, digest=digest,
                target=f"{column}:{digest}", regions=json.dumps(regions), who=principal.identity,
                roles=json.dumps(sorted(principal.roles)), reason=reason, params=json.dumps(params),
                expires_at=datetime.now(UTC) + gov.approval_expiry)
    return find_request(spec, f"req-{v}", root=root)


def approved_request(spec: PipelineSpec, principal: Principal, request_id: str, *, column: str, digest: str,
                     root: str | None = None) -> Request:
    """The approved erasure request ``request_id``, checked against what is about to be erased:
    refused unless it is an erasure, approved, not carried out, not expired, of ``column`` and
    of exactly the values ``digest`` binds, and ``principal`` holds ``erase`` in every region."""
    authorize(spec, principal, "erase", spec.regions)
    req = find_request(spec, request_id, root=root)
    if req.action != "erase":
        raise GovernanceError(f"{spec.name}: {request_id} is a request for {req.action}, not an erasure", status=409)
    state = req.state()
    if state != "approved":
        need = int(req.params.get("approvals_needed") or governance_of(spec).approvals)
        detail = {"pending": f"it has {len(req.approvals)} of {need} approval(s)",
                  "decided": f"it was carried out already ({req.decision_id})",
                  "expired": f"it expired at {req.expires_at:%Y-%m-%d %H:%M:%S} UTC; request again",
                  "rejected": "it was rejected"}.get(state, state)
        raise GovernanceError(f"{spec.name}: {request_id} cannot be carried out: {detail}", status=409)
    if req.params.get("column") != column or req.digest != digest:
        raise GovernanceError(
            f"{spec.name}: {request_id} approved erasing {req.params.get('values_count')} value(s) of "
            f"{req.params.get('column')!r} (digest {req.digest}), not these {column!r} values (digest {digest}): "
            "pass exactly the values requested", status=409)
    return req
