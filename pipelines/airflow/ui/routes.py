"""The routes of the Lockstep view inside Airflow, and the small JSON API behind it, behind
Airflow's auth; the HTML is rendered by :mod:`pipelines.airflow.ui.pages`.

A FastAPI app that Airflow's api-server mounts at ``/lockstep`` (see ``plugins/lockstep.py``;
the plugin's external view shows ``/lockstep/`` in Airflow's nav, and a pipeline's page on
its DAG and DAG-run pages). Pages (server-rendered HTML):

* ``GET /lockstep/`` — per pipeline the user may read: the generation in force and the
  region x interval certification matrix;
* ``GET /lockstep/pipelines/{dag_id}`` — one pipeline: matrix, generation in force and the
  decision history (who, why, when, expiry); with a ``models:`` section, the release in force,
  the release history and each candidate's per-region shadow evaluations;
* ``GET /lockstep/pipelines/{dag_id}/intervals/{interval}`` — the drill-down: every failed
  check (region, table, keys, columns, observed vs threshold), the drift heatmap region x
  column, quarantine counts with sample rows, links to Data Docs and the Airflow run;
* ``GET /lockstep/pipelines/{dag_id}/docs/{path}`` — the pipeline's static Data Docs.

JSON: ``/lockstep/api/pipelines``, ``.../{dag_id}/status`` (what ``lockstep status --json``
prints), ``.../decisions`` (newest first), ``.../matrix``, ``.../intervals/{interval}``
(what ``lockstep explain --json`` prints), ``.../releases`` (the model's releases, 404
without a ``models:`` section).

**Auth**: every route runs the api-server's own security dependencies
(:mod:`airflow.api_fastapi.core_api.security`): the same JWT as ``/api/v2`` (bearer header
or the UI's session cookie), 401 without one; a pipeline's routes need ``GET`` on the DAG
whose id is the pipeline's name (``requires_access_dag``), 403 otherwise; the index and the
list show only the pipelines the user may read (403 when there are pipelines but none is
readable). OpenAPI docs are off: the app describes no route to anyone unauthenticated.

It reads the same Delta tables as the CLI (:mod:`pipelines.certify`, :mod:`pipelines.status`,
:mod:`pipelines.matrix`); data libraries are imported per request, never when the api-server
loads plugins. The specs are the ``*.yaml`` files in Airflow's configured DAGs folder
(``[core] dags_folder``).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag
from airflow.configuration import conf
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse

from pipelines.airflow.ui.pages import INTRO, esc, page, render_drill_down, render_pipeline

__all__ = ["app", "drill_down", "readable"]

app = FastAPI(
    title="Lockstep", description="Certified multi-region feature pipelines",
    docs_url=None, redoc_url=None, openapi_url=None,
)

#: the dependency of every pipeline route: the caller may read the DAG ``{dag_id}``
CAN_READ_DAG = [Depends(requires_access_dag("GET"))]


# --------------------------------------------------------------------------- pipelines


def _dags_folder() -> Path:
    """The DAGs folder Airflow is configured with (read per request, like Airflow does)."""
    return Path(conf.get("core", "dags_folder"))


def _specs() -> dict[str, Path]:
    """Pipeline name (= its DAG id) -> spec file, for every spec in the DAGs folder."""
    out: dict[str, Path] = {}
    for path in sorted(_dags_folder().glob("*.yaml")):
        try:
            name = (yaml.safe_load(path.read_text()) or {}).get("name") or path.stem
        except (OSError, yaml.YAMLError, AttributeError):
            name = path.stem
        out[str(name)] = path
    return out


def _load(dag_id: str) -> Any:
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


def _interval(spec: Any, key: str) -> Any:
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


@app.get("/api/pipelines/{dag_id}/status", dependencies=CAN_READ_DAG)
def status(dag_id: str) -> dict[str, Any]:
    from pipelines.status import pipeline_status

    return pipeline_status(_load(dag_id))


@app.get("/api/pipelines/{dag_id}/decisions", dependencies=CAN_READ_DAG)
def decision_log(dag_id: str, limit: int = 50) -> list[dict[str, Any]]:
    from pipelines.certify import decisions

    rows = [d.to_row() for d in decisions(_load(dag_id))]
    return list(reversed(rows))[:limit]


@app.get("/api/pipelines/{dag_id}/matrix", dependencies=CAN_READ_DAG)
def matrix(dag_id: str, last: int = 7) -> dict[str, Any]:
    from pipelines.matrix import certification_matrix

    return certification_matrix(_load(dag_id), last=last)


@app.get("/api/pipelines/{dag_id}/releases", dependencies=CAN_READ_DAG)
def model_releases(dag_id: str) -> dict[str, Any]:
    from pipelines.release_flow import model_releases as releases_of

    found = releases_of(_load(dag_id))
    if found is None:
        raise HTTPException(404, f"pipeline {dag_id!r} has no models: section")
    return found


@app.get("/api/pipelines/{dag_id}/intervals/{interval}", dependencies=CAN_READ_DAG)
def interval_detail(dag_id: str, interval: str) -> dict[str, Any]:
    spec = _load(dag_id)
    return drill_down(spec, _interval(spec, interval))


def drill_down(spec: Any, interval: Any) -> dict[str, Any]:
    """``explain`` of the interval plus quarantine counts and sample rows per region and table."""
    from pipelines.certify import explain
    from pipelines.matrix import region_options
    from pipelines.status import table_partitions
    from pipelines.storage import read_table, table_uri

    ex = explain(spec, interval)
    root = spec.root()
    quarantine = []
    for region in spec.regions:
        opts = region_options(spec, region)
        for t in spec.tables_in("raw", "features"):
            uri = table_uri(root, spec.name, region, "quarantine", t.name)
            version, per_ds = table_partitions(uri, opts)
            rows = int(sum(r for ds, r in per_ds.iter_rows() if ds == interval.ds)) if version is not None else 0
            if not rows:
                continue
            sample = (read_table(uri, partition=interval.partition(t.partition_by), storage_options=opts)
                      .head(3).collect().to_dicts())
            quarantine.append({"region": region, "table": t.name, "rows": rows, "sample": sample})
    ex["quarantine"] = quarantine
    return ex


def _base(request: Request) -> str:
    return str(request.scope.get("root_path") or "").rstrip("/")


@app.get("/", response_class=HTMLResponse)
def index(request: Request, user: GetUserDep) -> str:
    from pipelines.matrix import certification_matrix

    base = _base(request)
    sections = []
    for name in _readable_or_403(user):
        try:
            sections.append(render_pipeline(base, certification_matrix(_load(name)), history=False))
        except HTTPException as exc:
            sections.append(f"<h2>{esc(name)}</h2><p class=bad>{esc(str(exc.detail))}</p>")
    return page("Lockstep", INTRO + ("".join(sections) or "<p>no pipelines found</p>"))


@app.get("/pipelines/{dag_id}", response_class=HTMLResponse, dependencies=CAN_READ_DAG)
def pipeline_page(request: Request, dag_id: str, last: int = 7) -> str:
    from pipelines.release_flow import model_releases as releases_of

    base = _base(request)
    m = {**matrix(dag_id, last=last), "releases": releases_of(_load(dag_id))}
    crumbs = f"<div class=crumbs><a href='{base}/'>Lockstep</a> / {esc(dag_id)}</div>"
    return page(f"Lockstep · {dag_id}", crumbs + render_pipeline(base, m, history=True))


@app.get("/pipelines/{dag_id}/intervals/{interval}", response_class=HTMLResponse, dependencies=CAN_READ_DAG)
def interval_page(request: Request, dag_id: str, interval: str) -> str:
    spec = _load(dag_id)
    ex = drill_down(spec, _interval(spec, interval))
    return page(f"Lockstep · {dag_id} · {interval}", render_drill_down(_base(request), spec, ex))


@app.get("/pipelines/{dag_id}/docs/{path:path}", dependencies=CAN_READ_DAG)
def data_docs(dag_id: str, path: str) -> FileResponse:
    from pipelines.validation.docs import docs_dir

    spec = _load(dag_id)
    root = spec.root()
    if "://" in root:
        raise HTTPException(404, "Data Docs are written for local roots only")
    base = docs_dir(root, spec.name).resolve()
    target = (base / path).resolve()
    if not target.is_relative_to(base) or not target.is_file():
        raise HTTPException(404, "no such Data Docs page")
    return FileResponse(target)
