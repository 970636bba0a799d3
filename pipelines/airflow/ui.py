"""The Lockstep page inside the Airflow UI, and the small JSON API behind it.

A FastAPI app that Airflow's api-server mounts at ``/lockstep`` (see ``plugins/lockstep.py``):

* ``GET /lockstep/`` — one page: per pipeline, the generation in force, blocked intervals and
  why, and each region's tables;
* ``GET /lockstep/api/pipelines`` — the shipped pipelines;
* ``GET /lockstep/api/pipelines/{name}/status`` — what ``lockstep status --json`` prints;
* ``GET /lockstep/api/pipelines/{name}/decisions`` — the certification log, newest first.

It reads the same Delta tables as the CLI; data libraries are imported per request, never
when the api-server loads plugins.
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse

app = FastAPI(title="Lockstep", description="Certified multi-region feature pipelines")


def _dags_folder() -> Path:
    return Path(os.environ.get("AIRFLOW__CORE__DAGS_FOLDER") or Path(__file__).resolve().parents[2] / "dags")


def _specs() -> dict[str, Path]:
    out = {}
    for path in sorted(_dags_folder().glob("*.yaml")):
        out[path.stem] = path
    return out


def _load(name: str) -> Any:
    from pipelines.errors import LockstepError
    from pipelines.spec import load_spec

    path = _specs().get(name)
    if path is None:
        raise HTTPException(404, f"no pipeline {name!r}")
    try:
        return load_spec(path)
    except LockstepError as exc:
        raise HTTPException(422, str(exc)) from None


@app.get("/api/pipelines")
def pipelines() -> list[dict[str, str]]:
    return [{"name": name, "spec": str(path)} for name, path in _specs().items()]


@app.get("/api/pipelines/{name}/status")
def status(name: str) -> dict[str, Any]:
    from pipelines.status import pipeline_status

    return pipeline_status(_load(name))


@app.get("/api/pipelines/{name}/decisions")
def decision_log(name: str, limit: int = 50) -> list[dict[str, Any]]:
    from pipelines.certify import decisions

    rows = [d.to_row() for d in decisions(_load(name))]
    return list(reversed(rows))[:limit]


def _section(name: str) -> str:
    esc = html.escape
    try:
        st = status(name)
    except HTTPException as exc:
        return f"<h2>{esc(name)}</h2><p class=bad>{esc(str(exc.detail))}</p>"
    cur = st["certified"]
    head = (
        f"<p class=ok>in force: <b>{esc(cur['generation_id'])}</b> (interval {esc(cur['interval'])}, "
        f"{esc(cur['kind'])} by {esc(cur['who'])} at {esc(str(cur['decided_at']))})</p>"
        if cur else "<p class=warn>no certified generation yet</p>"
    )
    blocked = "".join(
        f"<li><b>{esc(b['interval'])}</b>: " + "; ".join(esc(r) for r in b["reasons"][:8]) + "</li>"
        for b in st["blocked"]
    )
    rows = "".join(
        f"<tr><td>{esc(t['region'])}</td><td>{esc(t['table'])}</td><td>{t['version']}</td>"
        f"<td>{t['intervals']}</td><td>{esc(t['latest_interval'] or '-')}</td><td>{t['latest_rows']:,}</td></tr>"
        for t in st["tables"]
    )
    return (
        f"<h2>{esc(name)}</h2>{head}"
        + (f"<h3>blocked</h3><ul class=bad>{blocked}</ul>" if blocked else "")
        + "<table><tr><th>region</th><th>table</th><th>version</th><th>intervals</th>"
        f"<th>latest interval</th><th>rows</th></tr>{rows}</table>"
    )


PAGE = """<!doctype html><html><head><meta charset=utf-8><title>Lockstep</title>
<meta http-equiv=refresh content=30>
<style>body{{font-family:system-ui,sans-serif;margin:1.5rem;color:#1b1f24}}
table{{border-collapse:collapse;font-size:.85rem}}td,th{{border:1px solid #d0d7de;padding:.2rem .5rem;text-align:left}}
.ok{{color:#1a7f37}}.bad{{color:#cf222e}}.warn{{color:#9a6700}}</style></head>
<body><h1>Lockstep</h1><p>Models read only certified generations. Fix, re-run, override or roll back with
<code>lockstep explain | run | override | rollback</code>.</p>{sections}</body></html>"""


@app.get("/", response_class=HTMLResponse)
def page() -> str:
    sections = "".join(_section(name) for name in _specs()) or "<p>no pipelines found</p>"
    return PAGE.format(sections=sections)
