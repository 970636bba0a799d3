"""The FAB auth manager for an embedded Airflow: its configuration, and the users and roles of
a users file (:class:`~pipelines.spec.FabUsersFile`) created in the metadata DB.

``EmbeddedAirflow(auth="fab", users_file=...)`` (``lockstep airflow up --auth fab --users FILE``)
runs Airflow with ``FabAuthManager``; after ``db migrate`` it runs this module in Airflow's
Python (``python -m pipelines.airflow.embedded.fab USERS PASSWORDS``), which syncs FAB's own
roles, creates each role of the file FAB does not ship with the permissions of its
``airflow_role``, and creates (or updates: roles, password) every user, plus the home's
``admin`` as ``Admin``. Passwords are generated on first use and kept in the home
(``lockstep-fab-passwords.json``, mode 0600), never in the users file; the admin's is the home's.

A deployment's init container does the same in its own Airflow (:func:`deploy`:
``python -m pipelines.airflow.embedded.fab deploy USERS HOME DAGS`` with the admin's password
on stdin), after ``airflow db migrate`` and ``airflow fab-db migrate``.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

from pipelines.airflow.secrets import ADMIN_USER, home_secrets

__all__ = ["FAB_AUTH_MANAGER", "FAB_PASSWORDS_FILE", "check_roles", "deploy", "fab_env", "fab_passwords", "provision"]

FAB_AUTH_MANAGER = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
#: in the home: username -> password of every user of the users file (and the admin)
FAB_PASSWORDS_FILE = "lockstep-fab-passwords.json"
#: the users of a FAB Airflow started without a users file: the home's admin alone
ADMIN_ONLY: dict[str, Any] = {"users": [{"username": ADMIN_USER, "roles": ["Admin"]}]}


def fab_env() -> dict[str, str]:
    """The ``AIRFLOW__*`` variables that switch an embedded Airflow to the FAB auth manager."""
    return {"AIRFLOW__CORE__AUTH_MANAGER": FAB_AUTH_MANAGER, "AIRFLOW__FAB__UPDATE_FAB_PERMS": "True"}


def fab_passwords(home: Path, usernames: list[str], *, admin_password: str | None = None) -> dict[str, str]:
    """Username -> password for ``usernames``: kept in ``<home>/lockstep-fab-passwords.json``
    (mode 0600), generated for a user met for the first time; the admin's is ``admin_password``,
    else the home's."""
    path = Path(home) / FAB_PASSWORDS_FILE
    known: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    wanted = {u: known.get(u) or secrets.token_urlsafe(12) for u in usernames}
    wanted[ADMIN_USER] = admin_password or home_secrets(home)["admin_password"]
    if wanted != known:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(wanted, fh, indent=1)
    return wanted


def check_roles(users_file: Path | None, dags_folder: Path) -> None:
    """Refuse (:class:`~pipelines.errors.SpecError`, naming the user and the role) a users file
    giving a user a role that is neither FAB's own, nor one of the file's ``roles:``, nor one the
    governance of a spec in ``dags_folder`` names: a misspelt role would grant nothing, silently."""
    from pipelines.errors import LockstepError, SpecError
    from pipelines.spec import FAB_ROLES, load_spec, load_users_file

    if users_file is None:
        return
    users = load_users_file(users_file)
    governed: set[str] = set()
    for path in sorted(Path(dags_folder).glob("*.yaml")):
        try:
            gov = load_spec(path).governance
        except (LockstepError, ValueError):
            continue  # the dag-processor reports a spec that does not load
        governed.update(gov.roles if gov is not None else ())
    known = governed | set(FAB_ROLES) | set(users.roles)
    for u in users.users:
        unknown = [r for r in u.roles if r not in known]
        if unknown:
            raise SpecError(
                f"{users_file}: users[{u.username}].roles: {', '.join(map(repr, unknown))} is neither a FAB role "
                f"({', '.join(FAB_ROLES)}), nor under roles: in the file, nor named by the governance of a spec in "
                f"{dags_folder} ({', '.join(sorted(governed)) or 'none'})", file=str(users_file))


def provision(home: Path, users_file: Path | None, env: dict[str, str], *, python: str = sys.executable,
              cwd: Path | None = None, log: Path | None = None) -> dict[str, str]:
    """Create the users file's roles and users in the metadata DB of the Airflow ``env``
    configures; the passwords (username -> password). Raises
    :class:`~pipelines.airflow.client.AirflowError` (with the log's tail) when it fails."""
    from pipelines.airflow.client import AirflowError
    from pipelines.airflow.embedded.processes import tail
    from pipelines.spec import FabUsersFile, load_users_file

    users = load_users_file(users_file) if users_file else FabUsersFile.model_validate(ADMIN_ONLY)
    passwords = fab_passwords(home, [u.username for u in users.users])
    log = log or Path(home) / "logs" / "fab-users.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    plan = Path(home) / "lockstep-fab-users.json"  # the validated file, for Airflow's Python
    plan.write_text(users.model_dump_json())
    with log.open("wb") as out:
        result = subprocess.run([python, "-m", "pipelines.airflow.embedded.fab", str(plan), str(Path(home))],
                                env=env, cwd=cwd or home, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, timeout=600, check=False)
    if result.returncode != 0:
        raise AirflowError(f"creating the FAB users failed (exit {result.returncode}); see {log}:\n{tail(log)}",
                           log=str(log))
    return passwords


def _create(plan: Path, home: Path) -> None:  # runs in Airflow's Python, with its configuration
    from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder

    from pipelines.spec import FabUsersFile

    users = FabUsersFile.model_validate_json(plan.read_text())
    passwords = json.loads((home / FAB_PASSWORDS_FILE).read_text())
    with get_application_builder() as appbuilder:
        sm = appbuilder.sm
        sm.sync_roles()  # FAB's own roles (Admin, Op, User, Viewer, Public) and their permissions
        for name, base in users.created_roles().items():
            role = sm.find_role(name) or sm.add_role(name)
            for perm in sm.find_role(base).permissions:
                sm.add_permission_to_role(role, perm)
            print(f"role {name}: the permissions of {base}")
        everyone = [*users.users]
        if not any(u.username == ADMIN_USER for u in everyone):
            everyone.append(FabUsersFile.model_validate(ADMIN_ONLY).users[0])
        for u in everyone:
            roles = [sm.find_role(r) for r in u.roles]
            user = sm.find_user(username=u.username)
            if user is None:
                made = sm.add_user(username=u.username, first_name=u.first_name or u.username,
                                   last_name=u.last_name or "-", email=u.email or f"{u.username}@lockstep.invalid",
                                   role=roles, password=passwords[u.username])
                if not made:
                    raise SystemExit(f"could not create user {u.username}")
                print(f"user {u.username}: created with {', '.join(u.roles)}")
            else:
                user.roles = roles
                sm.update_user(user)
                sm.reset_password(user.id, passwords[u.username])
                print(f"user {u.username}: updated to {', '.join(u.roles)}")


def deploy(users_file: Path, home: Path, dags_folder: Path, admin_password: str) -> None:
    """A deployment's init container (docker/compose.yaml's ``airflow-init``): check the users
    file's roles against the specs in ``dags_folder``, then create its roles and users, and the
    admin with ``admin_password``, in this process's Airflow; the other users' passwords are
    generated once and kept in ``home`` (``lockstep-fab-passwords.json``, mode 0600)."""
    from pipelines.spec import load_users_file

    if not admin_password:
        raise SystemExit("error: no admin password on stdin (AIRFLOW_ADMIN_PASSWORD)")
    check_roles(users_file, dags_folder)
    users = load_users_file(users_file)
    fab_passwords(home, [u.username for u in users.users], admin_password=admin_password)
    plan = Path(home) / "lockstep-fab-users.json"
    plan.write_text(users.model_dump_json())
    _create(plan, home)


if __name__ == "__main__":
    if sys.argv[1] == "deploy":  # deploy USERS_FILE HOME DAGS_FOLDER, the admin's password on stdin
        from pipelines.errors import LockstepError

        try:
            deploy(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]), sys.stdin.readline().strip())
        except LockstepError as exc:
            raise SystemExit(f"error: {exc.message}") from None
    else:
        _create(Path(sys.argv[1]), Path(sys.argv[2]))
