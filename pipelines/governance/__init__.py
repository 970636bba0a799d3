"""Governance: verified identities, region-scoped authority, two-person approval, audit export.

* :mod:`~pipelines.governance.identity`: the :class:`Principal` deciding, ``airflow:<user>``
  (verified by Airflow's auth manager) or ``local:<user>`` (directly on storage, where the
  spec's ``governance.allow_local`` allows it);
* :mod:`~pipelines.governance.authority`: which regions a decision affects and whether the
  principal's roles grant the action there (``governance.roles``);
* :mod:`~pipelines.governance.approvals`: requests for an override or a rollback, approvals
  and rejections (``_lockstep/approvals``), the decision once N distinct people approved.

Example::

    me = local_principal(spec, "override")
    req = request_override(spec, me, interval, generation=block_id, reason="vendor delay")
"""

from __future__ import annotations

from pipelines.governance.approvals import (
    APPROVALS,
    Request,
    approve,
    find_request,
    request_override,
    request_release,
    request_rollback,
    requests,
    submit,
)
from pipelines.governance.authority import affected_regions, allowed, authorize, visible_regions
from pipelines.governance.identity import Principal, local_principal

__all__ = [
    "APPROVALS", "Principal", "Request", "affected_regions", "allowed", "approve", "authorize", "find_request",
    "local_principal", "request_override", "request_release", "request_rollback", "requests", "submit", "visible_regions",
]
