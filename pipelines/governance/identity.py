"""Who is deciding: a :class:`Principal`, the identity recorded on every decision.

Two sources, told apart on every record:

* ``airflow:<user>``: a user Airflow's auth manager verified (the plugin API's token, the
  user who triggered a DAG run); the principal carries the auth manager's role (or group)
  names, which the spec's ``governance.roles`` grant regions and actions to;
* ``local:<user>``: a decision made directly on storage (the CLI without ``--via airflow``),
  allowed only where the spec's ``governance.allow_local`` is on (or the spec has no
  ``governance``). Whoever holds the storage credentials can write the control tables, so a
  local principal holds every role the spec defines; its user name is self-asserted
  (``LOCKSTEP_ACTOR``, else the operating-system user) and the ``local:`` mark says so.

Example::

    me = local_principal(spec, "override")          # refused where allow_local is off
    me.identity                                      # 'local:ana'
    Principal("ana", "airflow", frozenset({"eu-west-operator"})).identity   # 'airflow:ana'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pipelines.errors import GovernanceError
from pipelines.spec import PipelineSpec
from pipelines.spec.settings import settings

Source = Literal["airflow", "local"]


@dataclass(frozen=True)
class Principal:
    """A person (or the scheduler) deciding, and where the identity comes from."""

    name: str
    source: Source
    #: the auth manager's role (or group) names of the user
    roles: frozenset[str] = field(default_factory=frozenset)

    @property
    def identity(self) -> str:
        """What a decision records: ``airflow:<user>`` or ``local:<user>``."""
        return f"{self.source}:{self.name}"


def local_principal(spec: PipelineSpec, what: str = "decide", *, command: str = "") -> Principal:
    """The principal of a decision made directly on storage from this process.

    Refused (:class:`~pipelines.errors.GovernanceError`) where the spec's
    ``governance.allow_local`` is off, naming the ``--via airflow`` alternative; ``command``
    is the CLI command to repeat with it."""
    gov = spec.governance
    if gov is not None and not gov.allow_local:
        alternative = f"`{command} --via airflow`" if command else "the command with `--via airflow`"
        raise GovernanceError(
            f"{spec.name}: a decision made directly on storage ({what} as local:{settings().user()}) is not allowed: "
            f"governance.allow_local is off, so decisions go through Airflow with the identity its auth manager "
            f"verified; run {alternative} (LOCKSTEP_AIRFLOW_USERNAME / LOCKSTEP_AIRFLOW_PASSWORD sign you in)",
            status=403)
    return Principal(settings().user(), "local", frozenset(gov.roles) if gov is not None else frozenset())
