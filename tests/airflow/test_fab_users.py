"""The FAB users file of ``lockstep airflow up --auth fab --users FILE``: a malformed file, or a
role no spec's governance (nor FAB, nor the file) names, is one clear error before anything
starts. The users and roles it creates in a real Airflow are tested in test_fab_matrix.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipelines.airflow.embedded import EmbeddedAirflow
from pipelines.airflow.embedded.fab import check_roles, fab_passwords
from pipelines.errors import SpecError
from pipelines.spec import load_users_file
from tests.conftest import REPO
from tests.test_bad_input import cli, one_clear_line

DOCKER_DAGS = REPO / "docker" / "dags"


def users_file(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "users.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("data, needle", [
    ({"users": []}, "users: List should have at least 1 item"),
    ({"users": [{"username": "ana", "roles": []}]}, "users[0].roles"),
    ({"users": [{"username": "ana", "roles": ["Admin"]}, {"username": "ANA", "roles": ["Op"]}]}, "duplicate username"),
    ({"users": [{"username": "ana", "roles": ["Admin"]}], "roles": {"Admin": {"airflow_role": "Viewer"}}},
     "FAB's own roles"),
    ({"users": [{"username": "ana", "roles": ["x"], "password": "hunter2"}]}, "users[0].password"),
    ({"users": [{"username": "a b", "roles": ["x"]}]}, "users[0].username"),
    (["ana"], "expected a mapping with users:"),
])
def test_a_malformed_users_file_names_the_field(tmp_path: Path, data: object, needle: str) -> None:
    with pytest.raises(SpecError) as err:
        load_users_file(users_file(tmp_path, data))
    assert needle in str(err.value) and str(tmp_path) in str(err.value)


def test_roles_are_those_the_governance_names(tmp_path: Path) -> None:
    ok = users_file(tmp_path, {"roles": {"auditor": {"airflow_role": "Viewer"}}, "users": [
        {"username": "ana", "roles": ["eu-west-operator"]}, {"username": "ivo", "roles": ["auditor", "Viewer"]}]})
    check_roles(ok, DOCKER_DAGS)
    assert load_users_file(ok).created_roles() == {"auditor": "Viewer", "eu-west-operator": "User"}
    typo = users_file(tmp_path, {"users": [{"username": "ana", "roles": ["eu-west-operater"]}]})
    with pytest.raises(SpecError) as err:
        check_roles(typo, DOCKER_DAGS)
    assert "users[ana].roles: 'eu-west-operater' is neither a FAB role" in str(err.value)
    assert "eu-west-operator" in str(err.value)  # what the governance does name


def test_passwords_are_generated_once_and_kept_in_the_home(tmp_path: Path) -> None:
    first = fab_passwords(tmp_path, ["ana", "ben"])
    assert set(first) == {"ana", "ben", "admin"} and first["ana"] != first["ben"]
    assert fab_passwords(tmp_path, ["ana", "ben"]) == first
    assert oct((tmp_path / "lockstep-fab-passwords.json").stat().st_mode & 0o777) == "0o600"


def test_the_cli_refuses_a_bad_users_file_before_anything_starts(tmp_path: Path) -> None:
    bad = users_file(tmp_path, {"users": [{"username": "ana", "roles": ["nobody"]}]})
    home = tmp_path / "home"
    one_clear_line(cli("airflow", "up", "--users", str(bad), "--home", str(home)), "--auth fab")
    one_clear_line(cli("airflow", "up", "--auth", "ldap", "--home", str(home)), "--auth", "ldap")
    one_clear_line(cli("airflow", "up", "--auth", "fab", "--users", str(bad), "--home", str(home)),
                   str(bad), "users[ana].roles: 'nobody' is neither a FAB role")
    with pytest.raises(SpecError, match="'nobody' is neither a FAB role"):
        EmbeddedAirflow(home, dags_folder=DOCKER_DAGS, auth="fab", users_file=bad).start()
    assert not home.exists()


@pytest.mark.slow
def test_the_deployments_init_creates_the_users_files_users_and_roles(tmp_path: Path) -> None:
    """docker/compose.yaml's airflow-init command, as compose runs it (its paths in the
    containers mapped to folders here, SQLite for PostgreSQL): the FAB auth manager's tables
    migrated, docker/users.yaml's users created with their roles, the admin with the password
    of the admin_password secret; the other passwords generated into the secrets folder."""
    import json
    import os
    import subprocess
    import sys

    compose = yaml.safe_load((REPO / "docker" / "compose.yaml").read_text())
    env_of = compose["x-airflow-env"]
    init = compose["services"]["airflow-init"]
    assert env_of["AIRFLOW__CORE__AUTH_MANAGER"].endswith("FabAuthManager")
    assert not [k for k in env_of if "SIMPLE_AUTH_MANAGER" in k]
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    command = init["command"][-1]
    # its last step, the model registry (the database `mlflow` on the deployment's PostgreSQL,
    # the model's experiment in the control bucket), needs both: tests/models/test_deployment_registry.py
    # runs it against them, and the docker test in the deployment
    registry = command.index("&& python /opt/lockstep/docker/create_registry.py ")
    command = command[:registry].rstrip()
    for container, here in (("/opt/airflow/users.yaml", REPO / "docker" / "users.yaml"),
                            ("/opt/airflow/secrets", secrets_dir), ("/opt/airflow/dags", DOCKER_DAGS)):
        assert container in command and any(v.endswith(f":{container}") or f":{container}:" in v
                                            for v in init["volumes"]), container
        command = command.replace(container, str(here))
    # the admin's password: the compose secret admin_password (a file under /run/secrets)
    assert "admin_password" in init["secrets"] and "/run/secrets/admin_password" in command
    (tmp_path / "admin_password").write_text("admin-secret-for-test")
    command = command.replace("/run/secrets/admin_password", str(tmp_path / "admin_password"))
    venv_bin = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "LOCKSTEP_"))}
    env.update({
        "PATH": f"{venv_bin}:{env.get('PATH', '')}", "PYTHONPATH": str(REPO), "AIRFLOW_HOME": str(tmp_path / "home"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path / 'airflow.db'}",
        "AIRFLOW__CORE__AUTH_MANAGER": env_of["AIRFLOW__CORE__AUTH_MANAGER"],
        "AIRFLOW__FAB__UPDATE_FAB_PERMS": env_of["AIRFLOW__FAB__UPDATE_FAB_PERMS"],
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    })
    done = subprocess.run(["sh", "-c", command], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    listed = subprocess.run(["airflow", "users", "list", "-o", "json"], env=env, capture_output=True, text=True,
                            timeout=300)
    assert listed.returncode == 0, listed.stderr[-3000:]
    start = listed.stdout.index("[")
    users = {u["username"]: u["roles"] for u in json.loads(listed.stdout[start:])}
    expected = {u.username: u.roles for u in load_users_file(REPO / "docker" / "users.yaml").users}
    assert users == {**expected, "admin": ["Admin"]}
    passwords = json.loads((secrets_dir / "lockstep-fab-passwords.json").read_text())
    assert set(passwords) == set(users) and passwords["admin"] == "admin-secret-for-test"
    # a misspelt role in the users file stops the init with one line naming it
    typo = users_file(tmp_path, {"users": [{"username": "ana", "roles": ["eu-west-operater"]}]})
    failed = subprocess.run(["sh", "-c", command.replace(str(REPO / "docker" / "users.yaml"), str(typo))], env=env,
                            capture_output=True, text=True, timeout=600)
    assert failed.returncode != 0 and "Traceback" not in failed.stderr
    assert "error:" in failed.stderr and "'eu-west-operater' is neither a FAB role" in failed.stderr
