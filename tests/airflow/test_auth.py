"""Every Lockstep route behind Airflow's auth, on a real api-server with the simple auth manager.

The same JWT as ``/api/v2`` (bearer header or the UI's ``_token`` cookie); 401 without one;
403 for a user who may not read the pipeline's DAG (``outsider`` has no role); a viewer reads.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from pipelines.airflow.embedded import EmbeddedAirflow
from tests.airflow.test_ui import BLOCKED, build_lake

pytestmark = pytest.mark.slow

PIPELINE = "auth_demo"
ROUTES = [
    "/lockstep/",
    "/lockstep/api/pipelines",
    f"/lockstep/api/pipelines/{PIPELINE}/status",
    f"/lockstep/api/pipelines/{PIPELINE}/decisions",
    f"/lockstep/api/pipelines/{PIPELINE}/matrix",
    f"/lockstep/api/pipelines/{PIPELINE}/releases",
    f"/lockstep/api/pipelines/{PIPELINE}/intervals/{BLOCKED}",
    f"/lockstep/pipelines/{PIPELINE}",
    f"/lockstep/pipelines/{PIPELINE}/intervals/{BLOCKED}",
    f"/lockstep/pipelines/{PIPELINE}/docs/eu-central/index.html",  # a region's Data Docs site
]


def login_password(af: EmbeddedAirflow, user: str) -> str:
    """The password the simple auth manager generated for ``user`` (see ``USERS`` in conftest)."""
    passwords = json.loads((af.home / "simple_auth_manager_passwords.json.generated").read_text())
    return str(passwords[user])


def login(af: EmbeddedAirflow, user: str) -> str:
    """A JWT from the auth manager's login, as any client gets one."""
    response = httpx.post(f"{af.url}/auth/token", json={"username": user, "password": login_password(af, user)},
                          timeout=30)
    assert response.status_code == 201, response.text
    return str(response.json()["access_token"])


@pytest.fixture(scope="module")
def served(embedded_airflow: EmbeddedAirflow, airflow_dags: Path) -> EmbeddedAirflow:
    build_lake(airflow_dags, PIPELINE)
    return embedded_airflow


def test_without_a_token_every_route_is_401_like_api_v2(served: EmbeddedAirflow) -> None:
    af = served
    assert httpx.get(f"{af.url}/api/v2/dags", timeout=30).status_code == 401
    for path in [*ROUTES, "/lockstep/api/pipelines/nope/status"]:
        response = httpx.get(f"{af.url}{path}", timeout=30)
        assert response.status_code == 401, (path, response.text[:300])
        assert PIPELINE not in response.text and "lake" not in response.text
    for path in ("/lockstep/docs", "/lockstep/openapi.json", "/lockstep/redoc"):
        assert httpx.get(f"{af.url}{path}", timeout=30).status_code == 404, path
    bad = {"Authorization": "Bearer not-a-jwt"}
    assert httpx.get(f"{af.url}/lockstep/api/pipelines", headers=bad, timeout=30).status_code in (401, 403)


@pytest.mark.parametrize("user", ["admin", "viewer"])
def test_users_who_may_read_the_dag_see_every_route(served: EmbeddedAirflow, user: str) -> None:
    af = served
    token = login(af, user)
    headers = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{af.url}/api/v2/dags", headers=headers, timeout=30).status_code == 200
    for path in ROUTES:
        response = httpx.get(f"{af.url}{path}", headers=headers, timeout=60)
        assert response.status_code == 200, (path, response.text[:300])
    names = [p["name"] for p in httpx.get(f"{af.url}/lockstep/api/pipelines", headers=headers, timeout=30).json()]
    assert PIPELINE in names
    matrix = httpx.get(f"{af.url}/lockstep/api/pipelines/{PIPELINE}/matrix", headers=headers, timeout=60).json()
    assert matrix["cells"][BLOCKED]["eu-central"]["state"] == "blocked"
    # the UI's session cookie is the same token
    page = httpx.get(f"{af.url}/lockstep/pipelines/{PIPELINE}", cookies={"_token": token}, timeout=60)
    assert page.status_code == 200 and "decision history" in page.text
    assert httpx.get(f"{af.url}/lockstep/api/pipelines/nope/status", headers=headers, timeout=30).status_code == 404


def test_a_user_without_access_to_the_dag_gets_403(served: EmbeddedAirflow) -> None:
    af = served
    headers = {"Authorization": f"Bearer {login(af, 'outsider')}"}
    assert httpx.get(f"{af.url}/api/v2/dags/{PIPELINE}", headers=headers, timeout=30).status_code == 403
    for path in ROUTES:
        response = httpx.get(f"{af.url}{path}", headers=headers, timeout=30)
        assert response.status_code == 403, (path, response.text[:300])
        assert "lake" not in response.text


def test_logged_out_a_browser_is_sent_to_the_login_page_and_json_stays_401(served: EmbeddedAirflow) -> None:
    af = served
    browser = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
    for path in [p for p in ROUTES if not p.startswith("/lockstep/api/")]:
        response = httpx.get(f"{af.url}{path}", headers=browser, timeout=30, follow_redirects=False)
        assert response.status_code == 307, (path, response.status_code, response.text[:200])
        location = response.headers["location"]
        assert "/login" in location and "next=" in location and PIPELINE not in response.text, location
        assert httpx.URL(location).params["next"] == path
        page = httpx.get(f"{af.url}{path}", headers=browser, timeout=30, follow_redirects=True)
        assert page.status_code == 200 and "<html" in page.text.lower()  # Airflow's login page
        assert "lake" not in page.text
    for path in [p for p in ROUTES if p.startswith("/lockstep/api/")]:
        response = httpx.get(f"{af.url}{path}", headers=browser, timeout=30, follow_redirects=False)
        assert response.status_code == 401, path
