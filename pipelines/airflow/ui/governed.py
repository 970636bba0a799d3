"""The Lockstep API's write routes and region scope: decisions by the user Airflow verified.

Every route takes the user from the api-server's own security dependency (the JWT of the
bearer header or the UI's cookie, :data:`GetUserDep`), never from a header, a parameter or
the body; the principal is ``airflow:<user>`` with the auth manager's role (or group) names,
which the spec's ``governance.roles`` grant regions and actions to. Writes also need
Airflow's edit permission on the DAG (``requires_access_dag("PUT")``).

* ``GET  /lockstep/api/pipelines/{dag_id}/requests`` — requests touching a region the user reads;
* ``POST /lockstep/api/pipelines/{dag_id}/requests`` — request an override or a rollback
  (``{"action", "reason", "interval", "generation" | "to", ...}``), 201;
* ``POST /lockstep/api/pipelines/{dag_id}/requests/{request_id}/approve`` — approve or
  (``"reject": true``) reject; the decision is recorded with the last approval it needs;
* ``POST /lockstep/api/pipelines/{dag_id}/regions/{region}/intervals/{interval}/run`` — re-run
  the region's interval through Airflow's API, as the calling user: the interval's run has the
  region's tasks and the cross-region ones after them cleared (a new run is triggered when
  the interval has none, which records who triggered it and whose gate decides as
  ``airflow:<user>``).

A refusal is the governance error's status (403 not allowed, 404 unknown, 409 a conflict with
the log, 422 a malformed request) with its one-line message as ``detail``.
:func:`scoped` cuts another region's rows out of what the read routes return.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal, TypeVar

import httpx
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag
from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict

from pipelines.airflow.client import TERMINAL_RUN_STATES
from pipelines.airflow.ui.routes import load_pipeline, parse_interval

__all__ = ["panel", "principal_of", "router", "scoped", "visible"]

router = APIRouter()
CAN_EDIT_DAG = [Depends(requires_access_dag("PUT"))]
T = TypeVar("T")


def principal_of(user: Any) -> Any:
    """The principal of a user the auth manager verified: its name and its role (or group,
    or team) names, whatever the auth manager calls them (FAB: ``roles``, Role rows loaded
    with the user; simple: ``role``; others: ``groups``, ``teams``).

    A collection the auth manager did not load with the user (FAB's ``groups``: the user is
    read in a session closed before the route runs) grants nothing: fewer roles, never more."""
    from pipelines.governance import Principal

    def named(attr: str) -> set[str]:
        try:
            items = getattr(user, attr, None) or []
        except Exception:  # noqa: BLE001 - SQLAlchemy's DetachedInstanceError: not loaded, not granted
            return set()
        if isinstance(items, str):
            items = [items]
        return {str(getattr(item, "name", item)) for item in items}

    names = named("roles") | named("role") | named("groups") | named("teams")
    return Principal(str(user.get_name()), "airflow", frozenset(names))


def _governed(fn: Callable[[], T]) -> T:
    """Run ``fn``; a Lockstep refusal is an HTTP error with its status and message."""
    from pipelines.errors import GovernanceError, LockstepError

    try:
        return fn()
    except GovernanceError as exc:
        raise HTTPException(exc.status, exc.message) from None
    except LockstepError as exc:
        raise HTTPException(409 if not exc.retryable else 503, exc.message) from None


def visible(spec: Any, user: Any) -> list[str]:
    """The regions ``user`` reads in ``spec`` (403 when governance grants none)."""
    from pipelines.governance import visible_regions

    regions = visible_regions(spec, principal_of(user))
    if not regions:
        raise HTTPException(403, f"{spec.name}: governance.roles grants you no region to read")
    return regions


def scoped(data: Any, spec: Any, regions: list[str]) -> Any:
    """``data`` without another region's rows: a dict whose ``region`` is not in ``regions``
    (or is cross-region, ``*``, unless every region is) is dropped, as are keys naming another
    region (a region, or ``<region>/...``) and such items of lists."""
    hidden = set(spec.regions) - set(regions)
    if not hidden:
        return data

    def other(value: Any) -> bool:
        return isinstance(value, str) and (value in hidden or value.split("/", 1)[0] in hidden or value == "*")

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            if other(value.get("region")):
                return _DROP
            out = {k: walk(v) for k, v in value.items() if not (isinstance(k, str) and other(k) and k != "*")}
            return {k: v for k, v in out.items() if v is not _DROP}
        if isinstance(value, list):
            return [w for w in (walk(v) for v in value) if w is not _DROP and not other(w)]
        return value

    return walk(data)


_DROP = object()


def panel(spec: Any, user: Any, interval: Any) -> dict[str, Any]:
    """What an interval's page shows about requests (:func:`~pipelines.airflow.ui.approvals.render_requests`):
    the requests about it touching a region ``user`` reads (pending first), and which buttons
    ``user`` may use: request an override of its block or a rollback to its certified
    generation (where the spec grants the action in every region it affects), approve or
    reject a pending request of someone else's."""
    from pipelines.certify import decisions
    from pipelines.governance import affected_regions, allowed, requests
    from pipelines.governance.approvals import governance_of

    me = principal_of(user)
    readable = set(spec.regions if spec.governance is None else visible(spec, user))

    def may(action: str, regions: list[str]) -> bool:
        return all(allowed(spec, me, action, r) for r in regions)

    mine = [d for d in decisions(spec) if d.interval == interval.key]
    override = None
    if mine and mine[-1].kind == "gate" and not mine[-1].certified:
        affected = affected_regions(spec, mine[-1], "override")
        if may("override", affected):
            override = {"generation": mine[-1].generation_id, "regions": affected}
    certified = [d for d in mine if d.certified and d.kind == "gate"]
    rollback = certified[-1].generation_id if certified and may("rollback", spec.regions) else None
    rows = [{**r.as_json(), "can_approve": may("approve", r.regions) and r.requester != me.identity}
            for r in reversed(requests(spec)) if r.interval == interval.key and readable & set(r.regions)]
    rows.sort(key=lambda r: r["state"] != "pending")
    return {"pipeline": spec.name, "interval": interval.key, "approvals": governance_of(spec).approvals,
            "requests": scoped(rows, spec, sorted(readable)), "override": override, "rollback": rollback,
            "me": me.identity}


class RequestBody(BaseModel):
    """A request for an override (``interval`` and the blocked ``generation``), a rollback
    (``to``, its ``scope``) or a model release (``kind``, ``version`` or ``to``, ``effective_from``)."""

    model_config = ConfigDict(extra="forbid")
    action: Literal["override", "rollback", "release"]
    reason: str
    interval: str | None = None
    generation: str | None = None
    until: datetime | None = None
    reinstate_older: bool = False
    to: str | None = None
    replacing: str | None = None
    #: a rollback: of its interval (default), or ``pipeline``: the pipeline's generation in force moves back
    scope: Literal["interval", "pipeline"] = "interval"
    #: a release: promote (a model ``version``) or rollback (``to`` a release id), from ``effective_from``
    kind: Literal["promote", "rollback"] | None = None
    version: str | None = None
    effective_from: str | None = None


class ApprovalBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str
    reject: bool = False


@router.get("/api/pipelines/{dag_id}/requests", dependencies=[Depends(requires_access_dag("GET"))])
def list_requests(dag_id: str, user: GetUserDep) -> list[dict[str, Any]]:
    from pipelines.governance import requests

    spec = load_pipeline(dag_id)
    regions = set(visible(spec, user))
    return [r.as_json() for r in _governed(lambda: requests(spec)) if regions & set(r.regions)]


@router.post("/api/pipelines/{dag_id}/requests", status_code=201, dependencies=CAN_EDIT_DAG)
def create_request(dag_id: str, body: RequestBody, user: GetUserDep) -> dict[str, Any]:
    from pipelines.governance import submit

    spec = load_pipeline(dag_id)
    me = principal_of(user)
    made = _governed(lambda: submit(spec, me, **body.model_dump()).as_json())
    _export(spec)
    return made


@router.post("/api/pipelines/{dag_id}/requests/{request_id}/approve", dependencies=CAN_EDIT_DAG)
def approve_request(dag_id: str, request_id: str, body: ApprovalBody, user: GetUserDep) -> dict[str, Any]:
    from pipelines.governance import approve

    spec = load_pipeline(dag_id)
    me = principal_of(user)
    req, _ = _governed(lambda: approve(spec, me, request_id, reason=body.reason, reject=body.reject))
    _export(spec)
    return req.as_json()


def _export(spec: Any) -> None:
    """The audit events of what a route just decided (a request, an approval, the decision)."""
    from pipelines.airflow.audit import export_decided

    export_decided(spec)


@router.post("/api/pipelines/{dag_id}/regions/{region}/intervals/{interval}/run", dependencies=CAN_EDIT_DAG)
def rerun_region(dag_id: str, region: str, interval: str, request: Request, user: GetUserDep) -> dict[str, Any]:
    """Re-run ``region``'s ``interval`` through Airflow's API with the caller's own token.

    When the interval has a run (its newest), that run's task instances of the region and
    everything downstream of them (reconcile, gate) are cleared, whatever their state, and
    Airflow runs them again (``"action": "cleared"``); a run still going is a 409. Without a
    run, a new one of the interval is triggered (``"triggered"``). Unchanged regions are not
    written again (the runner's rule)."""
    from pipelines.airflow.client import AirflowClient, AirflowError
    from pipelines.airflow.dag import region_task_ids
    from pipelines.governance import authorize

    spec = load_pipeline(dag_id)
    if region not in spec.regions:
        raise HTTPException(404, f"{spec.name}: no region {region!r}")
    iv = parse_interval(spec, interval)
    me = principal_of(user)
    _governed(lambda: authorize(spec, me, "run", [region]))
    client = AirflowClient.with_token(str(request.base_url).rstrip("/"), _token(request))
    out: dict[str, Any] = {"dag_id": dag_id, "region": region, "interval": iv.key, "triggered_by": me.identity}
    try:
        run = _run_of(client, spec, dag_id, iv)
        if run is None:
            run_id = f"rerun__{region}__{iv.key}__{datetime.now().strftime('%Y%m%dT%H%M%S%f')}"
            made = client.trigger(dag_id, iv.start, conf={"regions": [region], "rerun": region, "interval": iv.key},
                                  run_id=run_id)
            return {**out, "action": "triggered", "dag_run_id": made}
        if run["state"] not in TERMINAL_RUN_STATES:
            raise HTTPException(409, f"{spec.name} {iv.key}: run {run['dag_run_id']} is {run['state']}; "
                                     "re-run the region once it has finished")
        cleared = client.clear_tasks(dag_id, run["dag_run_id"], region_task_ids(spec, region),
                                     note=f"Lockstep: re-run of {region} by {me.identity}")
        if not cleared:
            raise HTTPException(409, f"{spec.name} {iv.key}: run {run['dag_run_id']} has no task of {region} "
                                     "to clear (a DAG parsed from another spec?)")
    except AirflowError as exc:
        raise HTTPException(int(exc.context.get("status") or 502), exc.message) from None
    except httpx.HTTPError as exc:  # Airflow's API not reachable at the address the caller used
        raise HTTPException(502, f"cannot reach Airflow's API at {client.base_url}: {exc}") from None
    finally:
        client.close()
    return {**out, "action": "cleared", "dag_run_id": run["dag_run_id"],
            "cleared": sorted({(t["task_id"], t.get("map_index", -1)) for t in cleared})}


def _run_of(client: Any, spec: Any, dag_id: str, iv: Any) -> dict[str, Any] | None:
    """The newest DAG run of ``dag_id`` that processes ``iv`` (as its tasks resolve their
    interval: :func:`~pipelines.airflow.dag.run_interval_of`), ``None`` when it has none."""
    from pipelines.airflow.dag import run_interval_of

    def when(value: str | None) -> datetime | None:
        return datetime.fromisoformat(value) if value else None

    offset = 0
    while True:
        page = client.dag_runs(dag_id, order_by="-id", limit=100, offset=offset)
        for run in page:
            found = run_interval_of(spec, run.get("conf"), when(run.get("data_interval_start")),
                                    when(run.get("data_interval_end")), when(run.get("logical_date")))
            if found is not None and found.key == iv.key:
                return dict(run)
        if len(page) < 100:
            return None
        offset += len(page)


def _token(request: Request) -> str:
    """The caller's JWT, as the security dependency read it (bearer header, else the UI's cookie)."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:]
    cookie = request.cookies.get("_token")
    if not cookie:
        raise HTTPException(401, "no token")
    return cookie
