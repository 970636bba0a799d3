"""The ``governance:`` section: who may decide what, in which regions, and how many must agree.

``roles`` maps an auth manager's role (or group) names to the regions they act in (a list, or
``"*"`` for every region of the pipeline) and the actions they may take there: ``read``,
``run``, ``certify``, ``override``, ``rollback``, ``release``, ``erase``, ``approve``. An override, a
rollback, a release or an erasure takes effect only with ``approvals`` distinct approvals, none by the
requester, each by a holder of ``approve`` in every region the decision affects; an approval
counts for ``approval_expiry``. ``allow_local``: decisions made directly on storage (the CLI
without ``--via airflow``) are allowed, and recorded as ``local:<user>``; off, only Airflow's
verified identities decide. A spec without the section is ungoverned (no roles, no approvals,
local decisions allowed and recorded as ``local:<user>``).

Example (YAML)::

    governance:
      allow_local: false
      approvals: 2
      approval_expiry: 24h
      roles:
        Admin: {regions: "*", actions: [read, run, certify, override, rollback, release, approve]}
        eu-west-operator: {regions: [eu-west], actions: [read, run, override, rollback, approve]}
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal, get_args

from pydantic import Field, StringConstraints, field_validator

from pipelines.spec.base import Region, _Model
from pipelines.spec.interval import Duration

Action = Literal["read", "run", "certify", "override", "rollback", "release", "erase", "approve"]
#: every action a role may be granted, in the order the docs list them
ACTIONS: tuple[str, ...] = get_args(Action)
#: the decisions that take effect only with the approvals the spec requires
APPROVED_ACTIONS: tuple[str, ...] = ("override", "rollback", "release", "erase")
#: an auth manager's role or group name (FAB's "Admin", "eu-west operator", a group's DN ...)
RoleName = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]


class RoleGrant(_Model):
    """What one role may do, and where."""

    regions: list[Region] | Literal["*"] = Field(
        description="the regions the role acts in, or '*' for every region of the pipeline",
        examples=[["eu-west"], "*"])
    actions: list[Action] = Field(min_length=1, description=f"what the role may do there: {', '.join(ACTIONS)}",
                                  examples=[["read", "override", "approve"]])

    @field_validator("actions")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        dupes = sorted({a for a in v if v.count(a) > 1})
        if dupes:
            raise ValueError(f"duplicate action(s) {dupes}")
        return v

    def covers(self, region: str) -> bool:
        return self.regions == "*" or region in self.regions


class GovernanceSpec(_Model):
    """Region-scoped authority and the two-person rule of one pipeline."""

    roles: dict[RoleName, RoleGrant] = Field(
        default_factory=dict, description="auth-manager role (or group) name -> the regions and actions it grants",
        examples=[{"eu-west-operator": {"regions": ["eu-west"], "actions": ["read", "override", "approve"]}}])
    approvals: int = Field(2, ge=1, le=12, description="distinct approvals an override, rollback, release or erasure needs "
                           "(never the requester's)", examples=[2])
    approval_expiry: Duration = Field(timedelta(hours=24), description="how long a request and its approvals count",
                                      examples=["24h", "30m"])
    allow_local: bool = Field(False, description="allow decisions made directly on storage (the CLI without "
                              "--via airflow), recorded as local:<user>", examples=[True])

    @field_validator("approval_expiry")
    @classmethod
    def _positive(cls, v: timedelta) -> timedelta:
        if v <= timedelta(0):
            raise ValueError("must be a positive duration such as '24h'")
        return v

    def allows(self, roles: list[str] | tuple[str, ...] | frozenset[str], action: str, region: str) -> bool:
        """Does any of ``roles`` grant ``action`` in ``region``?"""
        return any(g.covers(region) and action in g.actions
                   for name, g in self.roles.items() if name in roles)
