"""Data Docs: a static site of every region's validation results, under the pipeline's root.

``<root>/<pipeline>/_lockstep/data_docs/index.html`` lists intervals and regions; each
region's page shows every expectation's GX-format result, and the raw results sit beside it
as JSON (``<interval>/<region>.json``), the contract between tools. The root is the control
root: a local folder or an object store (``s3://`` …), written through :class:`DocsWriter`
with the same deltalake storage options as the ``_lockstep`` tables.
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
    """The Data Docs folder of a local root."""
    return Path(join_uri(root, pipeline, "_lockstep", "data_docs"))


def docs_uri(root: str, pipeline: str) -> str:
    """The Data Docs location of any root (a local path or an object-store URI)."""
    return join_uri(root, pipeline, "_lockstep", "data_docs")


class DocsWriter:
    """Reads, writes and lists small text files under one base (local folder or object
    store), through deltalake's object store: the options are the tables' storage options.

    >>> w = DocsWriter("s3://lake/p/_lockstep/data_docs", {"AWS_REGION": "eu-west-1"})  # doctest: +SKIP
    >>> w.write_text("index.html", "<html>…</html>")                                     # doctest: +SKIP
    """

    def __init__(self, base: str, storage_options: dict[str, str] | None = None) -> None:
        from deltalake._internal import DeltaFileSystemHandler

        if "://" not in base:
            Path(base).mkdir(parents=True, exist_ok=True)
        self.base = base
        self._fs = DeltaFileSystemHandler(base, options=storage_options or None)

    def write_text(self, path: str, text: str) -> None:
        out = self._fs.open_output_stream(path)
        try:
            out.write(text.encode())
        finally:
            out.close()  # type: ignore[attr-defined]  # not in deltalake's stub

    def read_text(self, path: str) -> str:
        f = self._fs.open_input_file(path)
        try:
            return f.read(f.size()).decode()
        finally:
            f.close()  # type: ignore[attr-defined]  # not in deltalake's stub

    def files(self) -> list[str]:
        """Every file under the base, as paths relative to it."""
        from pyarrow.fs import FileType

        infos = self._fs.get_file_info_selector("", allow_not_found=True, recursive=True)
        return sorted(i.path.lstrip("/") for i in infos if i.type == FileType.File)


def _page(title: str, body: str) -> str:
    return f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(title)}</title>{STYLE}</head><body>{body}</body></html>"


def write_region_docs(root: str, pipeline: str, interval: str, region: str, tables: list[dict[str, Any]],
                      storage_options: dict[str, str] | None = None) -> str:
    """Write one region's page for one interval and refresh the index; returns the page's
    location (a local path or an object-store URI)."""
    out = DocsWriter(docs_uri(root, pipeline), storage_options)
    out.write_text(f"{interval}/{region}.json", json.dumps(tables, default=str, indent=1))
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
    page = f"{interval}/{region}.html"
    out.write_text(page, _page(f"{pipeline} {interval} {region}", "".join(body)))
    _write_index(out, pipeline)
    return join_uri(out.base, interval, f"{region}.html")


def _write_index(out: DocsWriter, pipeline: str) -> None:
    by_interval: dict[str, list[str]] = {}
    for path in out.files():
        if path.count("/") == 1 and path.endswith(".json"):
            interval, name = path.split("/")
            by_interval.setdefault(interval, []).append(name[: -len(".json")])
    rows = []
    for interval in sorted(by_interval, reverse=True):
        links = []
        for region in sorted(by_interval[interval]):
            tables = json.loads(out.read_text(f"{interval}/{region}.json"))
            failed = sum(not r["success"] for t in tables for r in t["results"])
            cls = "ok" if failed == 0 else "bad"
            links.append(f"<a class={cls} href='{interval}/{region}.html'>{html.escape(region)}"
                         f"{'' if failed == 0 else f' ({failed} failed)'}</a>")
        rows.append(f"<tr><td>{html.escape(interval)}</td><td>{' · '.join(links)}</td></tr>")
    out.write_text("index.html", _page(f"{pipeline} data docs", f"<h1>{html.escape(pipeline)}: validation results</h1>"
                                       f"<table><tr><th>interval</th><th>regions</th></tr>{''.join(rows)}</table>"))
