"""Data Docs: a static site of every region's validation results, under the pipeline's root.

``<root>/<pipeline>/_lockstep/data_docs/index.html`` lists intervals and regions; each
region's page shows every expectation's GX-format result, and the raw results sit beside it
as JSON (``<interval>/<region>.json``), the contract between tools. Local roots only.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from pipelines.storage import join_uri

STYLE = ("<style>body{font-family:system-ui,sans-serif;margin:1.5rem}table{border-collapse:collapse;"
         "font-size:.85rem}td,th{border:1px solid #d0d7de;padding:.2rem .5rem;text-align:left}"
         ".ok{color:#1a7f37}.bad{color:#cf222e}</style>")


def docs_dir(root: str, pipeline: str) -> Path:
    return Path(join_uri(root, pipeline, "_lockstep", "data_docs"))


def _page(title: str, body: str) -> str:
    return f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(title)}</title>{STYLE}</head><body>{body}</body></html>"


def write_region_docs(root: str, pipeline: str, interval: str, region: str, tables: list[dict[str, Any]]) -> Path | None:
    """Write one region's page for one interval and refresh the index; returns the page."""
    if "://" in root:
        return None
    out = docs_dir(root, pipeline)
    (out / interval).mkdir(parents=True, exist_ok=True)
    (out / interval / f"{region}.json").write_text(json.dumps(tables, default=str, indent=1))
    esc = html.escape
    body = [f"<h1>{esc(pipeline)} · {esc(interval)} · {esc(region)}</h1><p><a href='../index.html'>all results</a></p>"]
    for t in tables:
        body.append(f"<h2>{esc(t['table'])}</h2><p>suite {esc(t['suite'])} ({t['suite_sha']}), {t['rows']:,} rows, "
                    f"{t['quarantined']:,} quarantined</p><table><tr><th>expectation</th><th>column</th><th>policy</th>"
                    "<th>result</th><th>details</th></tr>")
        for r in t["results"]:
            cfg = r["expectation_config"]
            policy = ((cfg.get("meta") or {}).get("lockstep") or {}).get("policy", "block")
            ok = "<span class=ok>pass</span>" if r["success"] else "<span class=bad>fail</span>"
            res = r.get("result") or {}
            detail = res.get("observed_value", res.get("unexpected_count"))
            body.append(f"<tr><td>{esc(cfg['type'])}</td><td>{esc(str(cfg['kwargs'].get('column', '')))}</td>"
                        f"<td>{policy}</td><td>{ok}</td><td>{esc(json.dumps(detail, default=str))}</td></tr>")
        body.append("</table>")
    page = out / interval / f"{region}.html"
    page.write_text(_page(f"{pipeline} {interval} {region}", "".join(body)))
    _write_index(out, pipeline)
    return page


def _write_index(out: Path, pipeline: str) -> None:
    rows = []
    for interval_dir in sorted((p for p in out.iterdir() if p.is_dir()), reverse=True):
        links = []
        for js in sorted(interval_dir.glob("*.json")):
            tables = json.loads(js.read_text())
            failed = sum(not r["success"] for t in tables for r in t["results"])
            cls = "ok" if failed == 0 else "bad"
            links.append(f"<a class={cls} href='{interval_dir.name}/{js.stem}.html'>{html.escape(js.stem)}"
                         f"{'' if failed == 0 else f' ({failed} failed)'}</a>")
        rows.append(f"<tr><td>{html.escape(interval_dir.name)}</td><td>{' · '.join(links)}</td></tr>")
    (out / "index.html").write_text(_page(f"{pipeline} data docs", f"<h1>{html.escape(pipeline)}: validation results</h1>"
                                          f"<table><tr><th>interval</th><th>regions</th></tr>{''.join(rows)}</table>"))
