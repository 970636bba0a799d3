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
