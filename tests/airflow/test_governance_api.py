"""Governed decisions through the Lockstep API on a real api-server (simple auth manager):
the identity is the token's user, never a header, a parameter or the body; a region the
user's role is not granted is 403, on writes and on listings alike; the CLI's `--via airflow`
goes through the same routes.

Roles (tests/airflow/conftest.py's USERS): alice and bob hold ``op`` (eu-central's operators
here), carol ``user`` (eu-west's), ``viewer`` reads eu-west only, admin everything.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from pipelines.airflow.embedded import EmbeddedAirflow
from pipelines.certify import decisions
from pipelines.spec import PipelineSpec, load_spec
from tests.airflow.test_auth import login, login_password
from tests.airflow.test_ui import BLOCKED, build_lake, generation_of
from tests.test_bad_input import cli, one_clear_line

pytestmark = pytest.mark.slow

PIPELINE = "gov_api"
OPERATOR = ["read", "run", "override", "rollback", "approve"]
GOVERNANCE = {
    "allow_local": False, "approvals": 2, "approval_expiry": "1h",
    "roles": {
        "admin": {"regions": "*", "actions": ["read", "run", "certify", "override", "rollback", "release", "approve"]},
        "op": {"regions": ["eu-central"], "actions": OPERATOR},
        "user": {"regions": ["eu-west"], "actions": OPERATOR},
        "viewer": {"regions": ["eu-west"], "actions": ["read"]},
    },
}


@pytest.fixture(scope="module")
def governed(embedded_airflow: EmbeddedAirflow, airflow_dags: Path) -> PipelineSpec:
    build_lake(airflow_dags, PIPELINE)  # built ungoverned; then the spec gains its governance section
    path = airflow_dags / f"{PIPELINE}.yaml"
    path.write_text(yaml.safe_dump({**yaml.safe_load(path.read_text()), "governance": GOVERNANCE}))
    (airflow_dags / f"{PIPELINE}.py").write_text(
        "from pathlib import Path\n\nfrom pipelines.airflow import build_dag\n\n"
        f"dag = build_dag(Path(__file__).with_name('{PIPELINE}.yaml'))\n")
    embedded_airflow.client.wait_for_dag(PIPELINE)
    embedded_airflow.client.set_paused(PIPELINE, True)  # re-runs are created, never executed here
    return load_spec(path)


def call(af: EmbeddedAirflow, user: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {login(af, user)}", **kwargs.pop("headers", {})}
    return httpx.request(method, f"{af.url}/lockstep/api/pipelines/{PIPELINE}{path}", headers=headers,
                         timeout=120, **kwargs)


def test_identity_comes_from_the_token_and_another_region_is_403(embedded_airflow: EmbeddedAirflow,
                                                                 governed: PipelineSpec) -> None:
    af, spec = embedded_airflow, governed
    block = generation_of(spec, BLOCKED, "blocked")
    body = {"action": "override", "interval": BLOCKED, "generation": block, "reason": "vendor delay"}
    # a header or a query parameter naming someone else changes nothing; the body cannot name anyone
    made = call(af, "alice", "POST", "/requests", json=body, headers={"X-Remote-User": "admin"},
                params={"user": "admin"})
    assert made.status_code == 201, made.text
    req = made.json()
    assert req["requester"] == "airflow:alice" and req["regions"] == ["eu-central"]
    assert call(af, "alice", "POST", "/requests", json={**body, "who": "admin"}).status_code == 422
    # eu-west's operator may neither request nor approve what affects eu-central
    denied = call(af, "carol", "POST", "/requests", json=body)
    assert denied.status_code == 403 and "airflow:carol (user) may not override in eu-central" in denied.text
    approve = f"/requests/{req['request_id']}/approve"
    denied = call(af, "carol", "POST", approve, json={"reason": "not mine"})
    assert denied.status_code == 403 and "may not approve in eu-central" in denied.text
    selfish = call(af, "alice", "POST", approve, json={"reason": "me"})
    assert selfish.status_code == 403 and "cannot approve their own request" in selfish.text
    assert call(af, "viewer", "POST", approve, json={"reason": "x"}).status_code == 403  # no edit on the DAG
    # the listing shows the request only to who reads a region it affects
    assert [r["request_id"] for r in call(af, "carol", "GET", "/requests").json()] == []
    assert [r["request_id"] for r in call(af, "bob", "GET", "/requests").json()] == [req["request_id"]]

    first = call(af, "bob", "POST", approve, json={"reason": "checked the feed"})
    assert first.status_code == 200 and first.json()["state"] == "pending", first.text
    assert call(af, "bob", "POST", approve, json={"reason": "again"}).status_code == 409
    done = call(af, "admin", "POST", approve, json={"reason": "agreed"})
    assert done.status_code == 200 and done.json()["state"] == "decided", done.text
    decision = decisions(spec)[-1]
    assert decision.decision_id == done.json()["decision_id"] and decision.kind == "override"
    assert decision.who == "airflow:alice"
    assert decision.bindings["approval"]["approvers"] == ["airflow:bob", "airflow:admin"]
    # every identity on a governed decision is one Airflow verified
    assert all(d.who.startswith("airflow:") for d in decisions(spec) if d.bindings.get("approval"))


def test_listings_show_only_granted_regions(embedded_airflow: EmbeddedAirflow, governed: PipelineSpec) -> None:
    af = embedded_airflow
    detail = call(af, "viewer", "GET", f"/intervals/{BLOCKED}")
    assert detail.status_code == 200, detail.text
    text = detail.text
    assert "eu-central" not in text and "eu-north" not in text, text[:2000]
    matrix = call(af, "viewer", "GET", "/matrix").json()
    assert matrix["regions"] == ["eu-west"] and set(matrix["cells"][BLOCKED]) == {"eu-west"}
    log = call(af, "viewer", "GET", "/decisions").json()
    assert log and all(r["region"] == "eu-west" for d in log for r in d["reasons"])
    assert "eu-central" not in json.dumps(log)
    everything = call(af, "admin", "GET", f"/intervals/{BLOCKED}").json()
    assert any(f["region"] == "eu-central" for f in everything["failed"])
    page = httpx.get(f"{af.url}/lockstep/pipelines/{PIPELINE}/intervals/{BLOCKED}",
                     cookies={"_token": login(af, "viewer")}, timeout=120)
    assert page.status_code == 200 and "eu-central" not in page.text


def test_rerun_of_a_region_goes_through_airflow_as_the_caller(embedded_airflow: EmbeddedAirflow,
                                                              governed: PipelineSpec) -> None:
    af = embedded_airflow
    assert call(af, "carol", "POST", f"/regions/eu-central/intervals/{BLOCKED}/run").status_code == 403
    done = call(af, "alice", "POST", f"/regions/eu-central/intervals/{BLOCKED}/run")
    assert done.status_code == 200, done.text
    assert done.json()["action"] == "triggered"  # the interval had no run (its lake was built without Airflow)
    run = af.client.dag_run(PIPELINE, done.json()["dag_run_id"])
    assert run["triggering_user_name"] == "alice" and run["conf"]["regions"] == ["eu-central"]
    assert run["conf"]["interval"] == BLOCKED


def test_cli_via_airflow_decides_as_the_signed_in_user(embedded_airflow: EmbeddedAirflow, governed: PipelineSpec,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    af, spec = embedded_airflow, governed
    first = [d for d in decisions(spec) if d.certified][0].generation_id
    path = str(spec.path)

    def as_user(user: str, *args: str) -> Any:
        monkeypatch.setenv("LOCKSTEP_AIRFLOW_USERNAME", user)
        monkeypatch.setenv("LOCKSTEP_AIRFLOW_PASSWORD", login_password(af, user))
        return cli(*args, "--airflow-url", af.url)

    # on storage it is refused (allow_local is off); through Airflow it is alice's request
    one_clear_line(cli("rollback", path, "--to", first, "--reason", "bad 3rd"), "governance.allow_local is off",
                   "--via airflow")
    res = as_user("admin", "rollback", path, "--to", first, "--reason", "bad 3rd", "--pipeline-wide", "--yes",
                  "--via", "airflow", "--json")
    assert res.exit_code == 0, res.output
    req = json.loads(res.stdout)
    assert req["requester"] == "airflow:admin" and req["regions"] == spec.regions
    line = one_clear_line(as_user("alice", "approve", path, req["request_id"], "--reason", "ok", "--via", "airflow"),
                          "403", "airflow:alice (op) may not approve in eu-west, eu-north")
    assert "Traceback" not in line
