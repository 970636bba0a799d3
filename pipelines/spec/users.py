"""The FAB users file: who may sign in to an embedded Airflow run with the FAB auth manager,
and with which roles (``lockstep airflow up --auth fab --users FILE``).

Role names are the ones the specs' ``governance.roles`` name (``eu-west-operator``, ``Admin``):
a role FAB does not ship is created with the Airflow permissions of ``airflow_role`` (FAB's
``User`` by default: read and edit DAGs, trigger runs), and Lockstep's governance then scopes
it to its regions and actions. Passwords are never in the file: each user's is generated on
first start and kept in the Airflow home (``lockstep-fab-passwords.json``, mode 0600).

Example (YAML)::

    roles:                       # optional: a role's Airflow permissions, copied from a FAB role
      auditor: {airflow_role: Viewer}
    users:
      - {username: ana, roles: [eu-west-operator]}
      - {username: ben, roles: [eu-west-operator, auditor], email: ben@example.org}
      - {username: root, roles: [Admin]}
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator

from pipelines.spec.base import _Model
from pipelines.spec.governance import RoleName

#: the roles FAB creates itself (their permissions are FAB's own)
FAB_ROLES: tuple[str, ...] = ("Admin", "Op", "User", "Viewer", "Public")
UserName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")]


class FabRole(_Model):
    """A role the file creates: its Airflow permissions are those of a FAB role."""

    airflow_role: Literal["Viewer", "User", "Op", "Admin"] = Field(
        "User", description="the FAB role whose Airflow permissions the role gets", examples=["Viewer"])


class FabUser(_Model):
    username: UserName = Field(description="the login name (recorded as airflow:<username>)", examples=["ana"])
    roles: list[RoleName] = Field(min_length=1, description="FAB role names, as the specs' governance names them",
                                  examples=[["eu-west-operator"]])
    email: str | None = Field(None, description="default <username>@lockstep.invalid")
    first_name: str | None = None
    last_name: str | None = None


class FabUsersFile(_Model):
    """The users (and the extra roles) an embedded Airflow with the FAB auth manager creates."""

    roles: dict[RoleName, FabRole] = Field(default_factory=dict, description="roles beyond FAB's own, by name")
    users: list[FabUser] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> FabUsersFile:
        names = [u.username.lower() for u in self.users]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"users: duplicate username(s) {dupes}")
        clash = sorted(set(self.roles) & set(FAB_ROLES))
        if clash:
            raise ValueError(f"roles: {clash} are FAB's own roles; their permissions cannot be redefined")
        return self

    def role_names(self) -> list[str]:
        """Every role a user holds, in first-seen order."""
        seen: dict[str, None] = {}
        for u in self.users:
            seen.update(dict.fromkeys(u.roles))
        return list(seen)

    def created_roles(self) -> dict[str, str]:
        """Role -> the FAB role whose permissions it copies, for every role FAB does not ship."""
        return {r: (self.roles[r].airflow_role if r in self.roles else "User")
                for r in [*self.roles, *self.role_names()] if r not in FAB_ROLES}
