"""The routes of the Lockstep view inside Airflow, and the small JSON API behind it, behind
Airflow's auth; the HTML is rendered by :mod:`pipelines.airflow.ui.pages`.

A FastAPI app that Airflow's api-server mounts at ``/lockstep`` (see :mod:`pipelines.airflow.plugin`, registered through the ``airflow.plugins`` entry point;
the plugin's external view shows ``/lockstep/`` in Airflow's nav, and a pipeline's page on
its DAG and DAG-run pages). Pages (server-rendered HTML):

* ``GET /lockstep/`` — per pipeline the user may read: the generation in force and the
  region x interval certification matrix;
* ``GET /lockstep/pipelines/{dag_id}`` — one pipeline: the filters (``region``, ``state``,
  ``start``, ``end``, ``size``), one page of the matrix on a calendar axis with links to the
  older and newer intervals (``page``), the generation in force and the decision history (who, why, when, expiry); with a ``models:`` section, the release in force,
  the release history and each candidate's per-region shadow evaluations;
* ``GET /lockstep/pipelines/{dag_id}/intervals/{interval}`` — the drill-down: every failed
  check (region, table, keys, columns, observed vs threshold), the drift heatmap region x
  column, quarantine counts (the rows stay in their region), links to Data Docs and the Airflow run,
  and the requests about the interval with the buttons that request an override or a rollback
  and approve or reject (:mod:`~pipelines.airflow.ui.approvals`, behind the spec's governance);
* ``GET /lockstep/pipelines/{dag_id}?run_id=<run>`` — Airflow's DAG-run tab: the drill-down of
  the interval that run processes (:mod:`~pipelines.airflow.ui.runs`);
* ``GET /lockstep/pipelines/{dag_id}/docs/{region}/{path}`` — a region's static Data Docs.

JSON: ``/lockstep/api/pipelines``, ``.../{dag_id}/status`` (what ``lockstep status --json``
prints), ``.../decisions`` (newest first), ``.../matrix`` (one page, the same filters as the
page; a bad one is a 422 naming the parameter), ``.../intervals/{interval}``
(what ``lockstep explain --json`` prints), ``.../releases`` (the model's releases, 404
without a ``models:`` section).

**Auth**: every route runs the api-server's own security dependencies
(:mod:`airflow.api_fastapi.core_api.security`): the same JWT as ``/api/v2`` (bearer header
or the UI's session cookie), 401 without one (a browser asking for a page, ``Accept: text/html``,
is redirected to Airflow's login page instead, with ``next`` back to the page; the JSON routes
stay 401); a pipeline's routes need ``GET`` on the DAG
whose id is the pipeline's name (``requires_access_dag``), 403 otherwise; the index and the
list show only the pipelines the user may read (403 when there are pipelines but none is
readable). OpenAPI docs are off: the app describes no route to anyone unauthenticated.

It reads the same control tables as the CLI (:mod:`pipelines.certify`, :mod:`pipelines.status`,
:mod:`pipelines.matrix`), and nothing else (but a DAG-run tab whose run recorded nothing yet,
which asks Airflow's API about the run with the caller's token): the api-server needs the control plane's key
alone, never a region's; data libraries are imported per request, never when the api-server
loads plugins. The specs are the ``*.yaml`` files in Airflow's configured DAGs folder
(``[core] dags_folder``).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag
from airflow.configuration import conf
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from pipelines.airflow.ui.pages import INTRO, esc, page, render_drill_down, render_pipeline

__all__ = ["app", "drill_down", "load_pipeline", "parse_interval", "readable"]

app = FastAPI(title="Lockstep", description="Certified multi-region feature pipelines",
              docs_url=None, redoc_url=None, openapi_url=None)


@app.exception_handler(StarletteHTTPException)
async def _login_redirect(request: Request, exc: StarletteHTTPException) -> Response:
    """Logged out, a browser asking for a page is sent to Airflow's login page (back here
    after it); the JSON routes, and clients that do not ask for HTML, get the 401."""
    rel = request.url.path[len(_base(request)):] or "/"
    if exc.status_code == 401 and not rel.startswith("/api/") and "text/html" in request.headers.get("accept", ""):
        from urllib.parse import urlencode

        from airflow.api_fastapi.app import get_auth_manager

        back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"{get_auth_manager().get_url_login()}?{urlencode({'next': back})}", status_code=307)
    return await http_exception_handler(request, exc)


#: the dependency of every pipeline route: the caller may read the DAG ``{dag_id}``
CAN_READ_DAG = [Depends(requires_access_dag("GET"))]


# --------------------------------------------------------------------------- pipelines


def _dags_folder() -> Path:
    """The DAGs folder Airflow is configured with (read per request, like Airflow does)."""
    return Path(conf.get("core", "dags_folder"))


#: spec file -> ((its mtime in ns, its size), the pipeline name it declares): a file is parsed
#: again only once it changed, not on every request
_NAMES: dict[Path, tuple[tuple[int, int], str]] = {}


def _spec_name(path: Path) -> str:
    """The pipeline name the spec file at ``path`` declares (its stem when it declares none or
    cannot be parsed: loading it then gives the error)."""
    from pipelines.spec.loading import parse_yaml

    try:
        st = path.stat()
    except OSError:
        return path.stem
    stamp = (st.st_mtime_ns, st.st_size)
    known = _NAMES.get(path)
    if known is not None and known[0] == stamp:
        return known[1]
    try:
        name = str((parse_yaml(path.read_text()) or {}).get("name") or path.stem)
    except (OSError, yaml.YAMLError, AttributeError):
        name = path.stem
    _NAMES[path] = (stamp, name)
    return name


def _specs() -> dict[str, Path]:
    """Pipeline name (= its DAG id) -> spec file, for every spec in the DAGs folder."""
    return {_spec_name(path): path for path in sorted(_dags_folder().glob("*.yaml"))}


def load_pipeline(dag_id: str) -> Any:
    """The spec of pipeline ``dag_id`` from the DAGs folder (404 unknown, 422 malformed)."""
    from pipelines.errors import LockstepError
    from pipelines.spec import load_spec

    path = _specs().get(dag_id)
    if path is None:
        raise HTTPException(404, f"no pipeline {dag_id!r}")
    try:
        return load_spec(path)
    except LockstepError as exc:
        raise HTTPException(422, str(exc)) from None


def readable(names: Iterable[str], user: Any) -> list[str]:
    """The pipelines whose DAG ``user`` may read, asked of Airflow's auth manager."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails
    from airflow.models.dag import DagModel

    manager = get_auth_manager()
    return [
        n for n in names
        if manager.is_authorized_dag(method="GET", details=DagDetails(id=n, team_name=DagModel.get_team_name(n)),
                                     user=user)
    ]


def _readable_or_403(user: Any) -> list[str]:
    specs = list(_specs())
    allowed = readable(specs, user)
    if specs and not allowed:
        raise HTTPException(403, "Forbidden")
    return allowed


def parse_interval(spec: Any, key: str) -> Any:
    """The pipeline's interval named ``key`` (404 when none is)."""
    from pipelines.errors import SpecError
    from pipelines.spec import Interval

    try:
        return Interval.containing(key, spec.granularity)
    except (ValueError, SpecError):
        raise HTTPException(404, f"no interval {key!r}") from None


# --------------------------------------------------------------------------- JSON API


@app.get("/api/pipelines")
def pipelines(user: GetUserDep) -> list[dict[str, str]]:
    specs = _specs()
    return [{"name": name, "spec": str(specs[name])} for name in _readable_or_403(user)]


def _scoped(spec: Any, user: Any, data: Any) -> Any:
    """``data`` as ``user`` may see it: only the regions the spec's governance lets them read
    (everything on an ungoverned spec; 403 when no region is granted)."""
    from pipelines.airflow.ui.governed import scoped, visible

    return data if spec.governance is None else scoped(data, spec, visible(spec, user))


@app.get("/api/pipelines/{dag_id}/status", dependencies=CAN_READ_DAG)
def status(dag_id: str, user: GetUserDep) -> dict[str, Any]:
    from pipelines.status import pipeline_status

    spec = load_pipeline(dag_id)
    return dict(_scoped(spec, user, pipeline_status(spec)))


@app.get("/api/pipelines/{dag_id}/decisions", dependencies=CAN_READ_DAG)
def decision_log(dag_id: str, user: GetUserDep, limit: int = 50) -> list[dict[str, Any]]:
    import json

    from pipelines.certify import decisions

    spec = load_pipeline(dag_id)
    rows = [d.to_row() for d in decisions(spec)]
    if spec.governance is not None:  # the reasons and members as data, so another region's are cut out
        rows = [{**r, **{k: json.loads(r[k]) for k in ("reasons", "generation", "bindings")}} for r in rows]
    return list(_scoped(spec, user, list(reversed(rows))[:limit]))


class MatrixQuery(BaseModel):
    """The matrix's filters and page (:func:`pipelines.matrix_page.matrix_page`); ``last``:
    the page size's older name."""

    region: list[str] = []
    state: list[str] = []
    start: str | None = None
    end: str | None = None
    before: str | None = None
    page: int = 0
    size: int | None = None
    last: int | None = None


def _matrix_query(region: list[str] = Query([]), state: list[str] = Query([]), start: str | None = None,
                  end: str | None = None, before: str | None = None, page: int = 0, size: int | None = None,
                  last: int | None = None) -> MatrixQuery:
    return MatrixQuery(region=region, state=state, start=start, end=end, before=before, page=page, size=size,
                       last=last)


def matrix_of(spec: Any, user: Any, q: MatrixQuery) -> dict[str, Any]:
    """One page of ``spec``'s matrix as ``user`` may see it; a bad filter is a 422 naming it."""
    from pipelines.errors import QueryError
    from pipelines.matrix_page import matrix_page

    allowed = None if spec.governance is None else _visible(spec, user)
    try:
        m = matrix_page(spec, regions=q.region, states=q.state, start=q.start or None, end=q.end or None,
                        before=q.before or None, page=q.page, size=q.size if q.size is not None else q.last,
                        allowed=allowed)
    except QueryError as exc:
        raise HTTPException(422, exc.message) from None
    return dict(_scoped(spec, user, m))


@app.get("/api/pipelines/{dag_id}/matrix", dependencies=CAN_READ_DAG)
def matrix(dag_id: str, user: GetUserDep, q: MatrixQuery = Depends(_matrix_query)) -> dict[str, Any]:
    return matrix_of(load_pipeline(dag_id), user, q)


@app.get("/api/pipelines/{dag_id}/erasures", dependencies=CAN_READ_DAG)
def erasures(dag_id: str, user: GetUserDep) -> list[dict[str, Any]]:
    """``lockstep erase --status``: pending and completed erasures (digests, never values)."""
    from pipelines.erasure import erasure_status

    return erasure_status(load_pipeline(dag_id))


@app.get("/api/pipelines/{dag_id}/releases", dependencies=CAN_READ_DAG)
def model_releases(dag_id: str, user: GetUserDep) -> dict[str, Any]:
    from pipelines.release_flow import model_releases as releases_of

    spec = load_pipeline(dag_id)
    found = releases_of(spec)
    if found is None:
        raise HTTPException(404, f"pipeline {dag_id!r} has no models: section")
    return dict(_scoped(spec, user, found))


@app.get("/api/pipelines/{dag_id}/intervals/{interval}", dependencies=CAN_READ_DAG)
def interval_detail(dag_id: str, interval: str, user: GetUserDep) -> dict[str, Any]:
    spec = load_pipeline(dag_id)
    return dict(_scoped(spec, user, drill_down(spec, parse_interval(spec, interval))))


def drill_down(spec: Any, interval: Any) -> dict[str, Any]:
    """``explain`` of the interval plus the quarantine counts per region and table, from the
    control plane alone (the evidence regions published about their quarantine tables): the
    quarantined rows themselves stay in their region, at the table version named here."""
    import polars as pl

    from pipelines.certify import explain
    from pipelines.status import published_tables_by_interval

    ex = explain(spec, interval)
    q = published_tables_by_interval(spec).filter(
        pl.col("layer") == "quarantine", pl.col("interval") == interval.key, pl.col("rows") > 0)
    ex["quarantine"] = [
        {"region": r["region"], "table": r["table"], "rows": int(r["rows"]), "version": r["version"],
         "uri": spec.table_uri(r["region"], "quarantine", r["table"])}
        for r in q.sort("region", "table").iter_rows(named=True)]
    return ex


def _base(request: Request) -> str:
    return str(request.scope.get("root_path") or "").rstrip("/")


@app.get("/", response_class=HTMLResponse)
def index(request: Request, user: GetUserDep) -> str:
    base = _base(request)
    sections = []
    for name in _readable_or_403(user):
        try:
            spec = load_pipeline(name)
            sections.append(render_pipeline(base, matrix_of(spec, user, MatrixQuery()), history=False))
        except HTTPException as exc:
            sections.append(f"<h2>{esc(name)}</h2><p class=bad>{esc(str(exc.detail))}</p>")
    return page("Lockstep", INTRO + ("".join(sections) or "<p>no pipelines found</p>"))


@app.get("/pipelines/{dag_id}", response_class=HTMLResponse, dependencies=CAN_READ_DAG)
def pipeline_page(request: Request, dag_id: str, user: GetUserDep, run_id: str | None = None,
                  q: MatrixQuery = Depends(_matrix_query)) -> Response:
    """The pipeline's page: filters, one page of the matrix, the generation in force, the
    history; with ``run_id`` (Airflow's DAG-run tab) the drill-down of the run's interval."""
    from pipelines.airflow.ui.filters import render_filters, render_paging
    from pipelines.erasure import erasure_status
    from pipelines.release_flow import model_releases as releases_of

    base = _base(request)
    spec = load_pipeline(dag_id)
    if run_id:
        return HTMLResponse(run_page(request, spec, user, run_id))
    crumbs = f"<div class=crumbs><a href='{base}/'>Lockstep</a> / {esc(dag_id)}</div>"
    try:
        m = matrix_of(spec, user, q)
    except HTTPException as exc:
        if exc.status_code != 422:
            raise
        shown = {"pipeline": dag_id, "filters": {**q.model_dump(), "regions": q.region, "states": q.state}}
        body = crumbs + f"<h2>{esc(dag_id)}</h2>" + render_filters(base, shown, list(spec.regions), str(exc.detail))
        return HTMLResponse(page(f"Lockstep · {dag_id}", body), status_code=422)
    m["releases"] = _scoped(spec, user, releases_of(spec))
    m["erasures"] = erasure_status(spec)
    regions = list(spec.regions) if spec.governance is None else _visible(spec, user)
    controls = render_filters(base, m, regions) + render_paging(base, m)
    return HTMLResponse(page(f"Lockstep · {dag_id}", crumbs + render_pipeline(base, m, history=True, controls=controls)))


def _visible(spec: Any, user: Any) -> list[str]:
    from pipelines.airflow.ui.governed import visible

    return list(visible(spec, user))


def run_page(request: Request, spec: Any, user: Any, run_id: str) -> str:
    """Airflow's DAG-run tab: the drill-down of the interval run ``run_id`` processed."""
    from pipelines.airflow.ui.runs import run_interval

    key, source = run_interval(request, spec, run_id)
    base = _base(request)
    note = (f"<p class=run-interval>Airflow run <code>{esc(run_id)}</code> processes interval "
            f"<b>{esc(key)}</b> <span class=muted>(as {esc(source)} records it)</span> · "
            f"<a href='{base}/pipelines/{quote(spec.name)}'>all intervals</a></p>")
    return _interval_html(request, spec, user, key, note)


@app.get("/pipelines/{dag_id}/intervals/{interval}", response_class=HTMLResponse, dependencies=CAN_READ_DAG)
def interval_page(request: Request, dag_id: str, interval: str, user: GetUserDep) -> str:
    return _interval_html(request, load_pipeline(dag_id), user, interval)


def _interval_html(request: Request, spec: Any, user: Any, interval: str, note: str = "") -> str:
    from pipelines.airflow.ui.approvals import render_requests
    from pipelines.airflow.ui.governed import panel, visible

    iv = parse_interval(spec, interval)
    ex = _scoped(spec, user, drill_down(spec, iv))
    requests = render_requests(_base(request), panel(spec, user, iv))
    regions = None if spec.governance is None else visible(spec, user)
    return page(f"Lockstep · {spec.name} · {iv.key}",
                render_drill_down(_base(request), spec, ex, requests, regions, note=note))


@app.get("/pipelines/{dag_id}/docs/{path:path}", dependencies=CAN_READ_DAG)
def data_docs(dag_id: str, path: str, user: GetUserDep) -> FileResponse:
    """A region's Data Docs page: ``docs/<region>/<page>`` (each region's site is under its prefix)."""
    from pipelines.validation.docs import docs_dir

    spec = load_pipeline(dag_id)
    root = spec.control_root()
    if "://" in root:
        raise HTTPException(404, "Data Docs are served for local roots only")
    region, _, page = path.partition("/")
    if region not in spec.regions:
        raise HTTPException(404, f"no such region {region!r}: Data Docs are at docs/<region>/index.html")
    if spec.governance is not None:  # a region's site shows its check details: its readers only
        from pipelines.airflow.ui.governed import visible

        if region not in visible(spec, user):
            raise HTTPException(403, f"you may not read {region}'s Data Docs")
    base = docs_dir(root, spec.name, region).resolve()
    target = (base / (page or "index.html")).resolve()
    if not target.is_relative_to(base) or not target.is_file():
        raise HTTPException(404, "no such Data Docs page")
    return FileResponse(target)
