"""The authority matrix on a real api-server with the FAB auth manager: the deployed spec's 13
roles (12 region operators and ``Admin``, docker/dags/fraud_features.yaml's ``governance``)
x 12 regions x {read, list, run, override, rollback, approve, release}, every allow and every
deny through the Lockstep plugin's real routes, users and roles created in FAB's tables from a
users file (``EmbeddedAirflow(auth="fab", users_file=...)``, what ``lockstep airflow up --auth
fab --users FILE`` runs), the metadata DB SQLite.

The expectation is written out here, not asked of the code under test: ``Admin`` may do
everything everywhere; ``<region>-operator`` may read, list, run, override and approve in its
own region only, and neither roll back nor release (both affect every region). A pipeline of
12 regions x 100 rows holds a blocked interval between two certified ones; the block is moved from region
to region (a re-run of two regions), so an override and its approvals are asked about each
region. At the end, every request, approval and decision recorded names a user FAB verified.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import date
from typing import Any

import httpx
import pytest
import yaml

from pipelines.airflow.embedded import EmbeddedAirflow
from pipelines.certify import decisions
from pipelines.demo import with_faults
from pipelines.governance import requests
from pipelines.runner import run_interval
from pipelines.spec import FaultSpec, Interval, PipelineSpec, load_spec
from tests.conftest import REPO, small_spec_data

pytestmark = pytest.mark.slow

PIPELINE = "fab_matrix"
CERTIFIED, BLOCKED, LATER = "2026-01-01", "2026-01-02", "2026-01-03"
DEPLOYED = yaml.safe_load((REPO / "docker" / "dags" / "fraud_features.yaml").read_text())["governance"]
ACTIONS = ("read", "list", "run", "override", "rollback", "approve", "release")
OPERATES = {"read", "list", "run", "override", "approve"}  # an operator's, in its own region


def user_of(role: str) -> str:
    return "admin" if role == "Admin" else f"op-{role.removesuffix('-operator')}"


def expected(role: str, action: str, region: str) -> bool:
    return role == "Admin" or (action in OPERATES and role == f"{region}-operator")


@pytest.fixture(scope="module")
def fab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EmbeddedAirflow, PipelineSpec, PipelineSpec]]:
    """The FAB Airflow, the governed spec (as the api-server reads it) and the same pipeline
    ungoverned (the test's own runs, as the scheduler's gate would decide them)."""
    work = tmp_path_factory.mktemp("fab")
    dags = work / "dags"
    dags.mkdir()
    data = small_spec_data(regions=12, rows=100, name=PIPELINE)
    data.update(storage={"root": str(work / "lake")}, schedule="None")
    (dags / f"{PIPELINE}.yaml").write_text(yaml.safe_dump({**data, "governance": DEPLOYED}))
    (dags / f"{PIPELINE}.py").write_text(
        "from pathlib import Path\n\nfrom pipelines.airflow import build_dag\n\n"
        f"dag = build_dag(Path(__file__).with_name('{PIPELINE}.yaml'))\n")
    users = [{"username": user_of(role), "roles": [role]} for role in DEPLOYED["roles"] if role != "Admin"]
    (work / "users.yaml").write_text(yaml.safe_dump({"users": users}))
    governed = load_spec(dags / f"{PIPELINE}.yaml")
    assert len(governed.regions) == 12 and len(governed.governance.roles) == 13
    local = governed.model_copy(update={"governance": None})
    blocked_in(local, governed.regions[0], previous=None, first=True)
    with EmbeddedAirflow(work / "home", dags_folder=dags, parse_interval=2, auth="fab",
                         users_file=work / "users.yaml") as af:
        af.client.wait_for_dag(PIPELINE, timeout=300)
        af.client.set_paused(PIPELINE, True)  # re-runs are created, never executed here
        yield af, governed, local


def blocked_in(spec: PipelineSpec, region: str, *, previous: str | None, first: bool = False) -> None:
    """The blocked interval, now blocked by ``region`` alone (its merchant risk list stale)."""
    faulty = with_faults(spec, [FaultSpec(kind="stale_reference", regions=[region],
                                          dates=[date.fromisoformat(BLOCKED)])])
    run_interval(faulty, Interval.for_date(BLOCKED), regions=None if first else [previous, region])
    if first:  # certified before and after it: a rollback to the first is one an Admin may request
        for ds in (CERTIFIED, LATER):
            run_interval(faulty, Interval.for_date(ds))


class Session:
    """One signed-in user per role, through FAB's own login (``POST /auth/token``)."""

    def __init__(self, af: EmbeddedAirflow) -> None:
        self.af, self.tokens, self.http = af, {}, httpx.Client(base_url=af.url, timeout=120)

    def call(self, role: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        user = user_of(role)
        if user not in self.tokens:
            got = self.http.post("/auth/token", json={"username": user, "password": self.af.password_of(user)})
            assert got.status_code == 201, got.text
            self.tokens[user] = got.json()["access_token"]
        return self.http.request(method, f"/lockstep{path}", headers={"Authorization": f"Bearer {self.tokens[user]}"},
                                 **kwargs)


def allowed_by(response: httpx.Response, what: str, also: tuple[int, ...] = ()) -> bool:
    """Did the route let the action through? 403 with the governance's refusal is a deny;
    anything else but a 2xx (or a status in ``also``, a refusal after authority) fails."""
    if response.status_code == 403:
        assert "may not" in response.text or "grants you no region" in response.text, (what, response.text)
        return False
    assert response.status_code < 300 or response.status_code in also, (what, response.status_code, response.text)
    return True


def test_every_allow_and_deny_of_13_roles_in_12_regions(
        fab: tuple[EmbeddedAirflow, PipelineSpec, PipelineSpec]) -> None:
    af, spec, local = fab
    roles, regions = list(spec.governance.roles), spec.regions
    s = Session(af)
    got: dict[tuple[str, str, str], bool] = {}
    api = f"/api/pipelines/{PIPELINE}"
    t0 = time.monotonic()

    for role in roles:
        # list: the matrix, the decision log and the status show exactly the regions granted
        m = s.call(role, "GET", f"{api}/matrix")
        assert m.status_code == 200, m.text
        listed = set(m.json()["regions"])
        assert set(m.json()["cells"][BLOCKED]) == listed
        status = json.dumps(s.call(role, "GET", f"{api}/status").json())
        log = json.dumps(s.call(role, "GET", f"{api}/decisions").json())
        for region in regions:
            got[role, "list", region] = region in listed
            if region not in listed:
                for shown in (f'"{region}"', f'"{region}/'):  # a region, or a key under it
                    assert shown not in status and shown not in log, (role, region)
        # read: a region's check details (the drill-down's drift table) and its Data Docs
        detail = s.call(role, "GET", f"{api}/intervals/{BLOCKED}")
        assert detail.status_code == 200, detail.text
        drifted = set(detail.json()["drift"])
        for region in regions:
            docs = s.call(role, "GET", f"/pipelines/{PIPELINE}/docs/{region}/index.html")
            got[role, "read", region] = allowed_by(docs, f"read {region}", also=(404,))  # 404: no page yet
            assert (region in drifted) == got[role, "read", region], (role, region, sorted(drifted))
            # run: a re-run of the region's interval, triggered through Airflow as the caller
            run = s.call(role, "POST", f"{api}/regions/{region}/intervals/{BLOCKED}/run")
            # (409: allowed, then refused because the interval's run, which the first allowed re-run
            # triggered, has not finished: a region's tasks are cleared only in a finished run)
            got[role, "run", region] = allowed_by(run, f"run {region}", also=(409,))
            if run.status_code == 200:
                assert run.json()["triggered_by"] == f"airflow:{user_of(role)}"
            elif run.status_code == 409:
                assert "re-run the region once it has finished" in run.text, run.text
        # rollback and release affect every region: one request each tells all 12
        to = [d for d in decisions(spec) if d.certified][0].generation_id
        rb = s.call(role, "POST", f"{api}/requests", json={"action": "rollback", "to": to, "scope": "pipeline", "reason": "matrix"})
        rel = s.call(role, "POST", f"{api}/requests", json={"action": "release", "kind": "promote", "version": "1",
                                                           "effective_from": BLOCKED, "reason": "matrix"})
        for region in regions:
            got[role, "rollback", region] = allowed_by(rb, "rollback")
            got[role, "release", region] = allowed_by(rel, "release", also=(409,))  # 409: no model to release

    # override and approve: the block moves from region to region
    for i, region in enumerate(regions):
        if i:
            blocked_in(local, region, previous=regions[i - 1])
        block = [d for d in decisions(spec) if d.interval == BLOCKED][-1]
        assert not block.certified and {r["region"] for r in block.reasons} == {region}
        body = {"action": "override", "interval": BLOCKED, "generation": block.generation_id, "reason": "matrix"}
        made: dict[str, str] = {}
        for role in roles:
            r = s.call(role, "POST", f"{api}/requests", json=body)
            got[role, "override", region] = allowed_by(r, f"override {region}")
            if r.status_code == 201:
                assert r.json()["requester"] == f"airflow:{user_of(role)}" and r.json()["regions"] == [region]
                made[role] = r.json()["request_id"]
        for role in roles:  # approve another's request (one approval of the 2: nothing is decided)
            other = next(rid for who, rid in made.items() if who != role)
            r = s.call(role, "POST", f"{api}/requests/{other}/approve", json={"reason": "matrix"})
            got[role, "approve", region] = allowed_by(r, f"approve {region}")
            if r.status_code == 200:
                assert r.json()["state"] == "pending" and r.json()["approvals"][-1]["who"] == f"airflow:{user_of(role)}"
        # the requests listing shows a region's requests to its readers only
        for role in roles:
            listed = {r["request_id"] for r in s.call(role, "GET", f"{api}/requests").json()}
            assert (set(made.values()) <= listed) == expected(role, "read", region), (role, region)
    elapsed = time.monotonic() - t0

    want = {(role, action, region): expected(role, action, region)
            for role in roles for action in ACTIONS for region in regions}
    wrong = sorted(k for k in want if got.get(k) != want[k])
    assert not wrong, f"{len(wrong)} of {len(want)} cells differ from the spec, e.g. {wrong[:10]}"
    assert len(got) == 13 * 12 * 7 == len(want)
    print(f"\nFAB matrix: {len(want)} cells (13 roles x 12 regions x 7 actions) in {elapsed:.0f}s")

    # zero decisions recorded with an identity the auth manager did not verify
    verified = {f"airflow:{user_of(role)}" for role in roles}
    recorded = requests(spec)
    assert recorded and all(r.requester in verified for r in recorded)
    assert all(a["who"] in verified for r in recorded for a in r.approvals)
    assert all(d.who in verified for d in decisions(spec) if d.bindings.get("approval"))
    runs = af.client.dag_runs(PIPELINE)
    assert runs and {r["triggering_user_name"] for r in runs} <= {user_of(role) for role in roles}
