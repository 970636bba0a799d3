"""The HTML of the Lockstep view: pure functions from the dicts the JSON API serves
(:func:`~pipelines.certify.explain`, :func:`~pipelines.matrix.certification_matrix`) to
server-rendered pages, with the page's CSS. Nothing here imports Airflow or FastAPI: the
routes (:mod:`pipelines.airflow.ui.routes`) fetch, these render.
"""

from __future__ import annotations

import html
import json
import math
from typing import Any
from urllib.parse import quote

__all__ = ["INTRO", "esc", "page", "render_checks", "render_drill_down", "render_history", "render_in_force",
           "render_erasures", "render_matrix", "render_pipeline", "render_releases"]

esc = html.escape

CSS = """
:root{--fg:#1b1f24;--muted:#57606a;--line:#d0d7de;--ok:#1a7f37;--okbg:#dafbe1;--bad:#cf222e;--badbg:#ffebe9;
--ovr:#8250df;--ovrbg:#fbefff;--rb:#9a6700;--rbbg:#fff8c5;--none:#f6f8fa}
body{font-family:Inter,system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.25rem 1.5rem;color:var(--fg);font-size:14px}
h1{font-size:1.35rem;margin:.2rem 0 .6rem}h2{font-size:1.1rem;margin:1.4rem 0 .4rem}h3{font-size:.95rem;margin:1rem 0 .3rem}
a{color:#0969da;text-decoration:none}a:hover{text-decoration:underline}
.muted{color:var(--muted);overflow-wrap:anywhere}.crumbs{color:var(--muted);margin-bottom:.4rem}
table{border-collapse:collapse;margin:.3rem 0}td,th{border:1px solid var(--line);padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f8fa;font-weight:600}
table.matrix td{min-width:7.5rem;max-width:14rem;font-size:12px}
table.matrix td a{color:inherit;display:block}.state{font-weight:600;display:block}
.reason{display:block;color:var(--muted);overflow:hidden;text-overflow:ellipsis;white-space:nowrap;max-width:14rem}
td.certified{background:var(--okbg)}td.certified .state{color:var(--ok)}
td.blocked{background:var(--badbg)}td.blocked .state{color:var(--bad)}
td.stale{background:var(--rbbg)}td.stale .state{color:var(--rb)}
td.held{background:var(--none)}td.held .state{color:var(--bad);font-weight:400}
td.overridden{background:var(--ovrbg)}td.overridden .state{color:var(--ovr)}
td.rolled-back{background:var(--rbbg)}td.rolled-back .state{color:var(--rb)}
td.not-run{background:var(--none)}td.not-run .state{color:var(--muted);font-weight:400}
.pill{display:inline-block;white-space:nowrap;border-radius:1rem;padding:0 .5rem;font-size:12px;font-weight:600}
.pill.ok{background:var(--okbg);color:var(--ok)}.pill.bad{background:var(--badbg);color:var(--bad)}
.pill.warn{background:var(--rbbg);color:var(--rb)}
.heat td.h{text-align:right;font-variant-numeric:tabular-nums}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px}
pre{background:#f6f8fa;padding:.4rem .6rem;overflow-x:auto;margin:.2rem 0}
.scroll{max-width:100%;overflow-x:auto}td{overflow-wrap:break-word}td.keys,td.msg,td code{overflow-wrap:anywhere}
table.failed-checks td.keys,table.failed-checks td.msg{min-width:12rem;max-width:32rem}
td.no-data{color:var(--muted);font-style:italic;text-align:center}
details.warning{margin:.2rem 0}details.warning summary{cursor:pointer}
.count{color:var(--muted);font-weight:400}
form.filters{display:flex;flex-wrap:wrap;gap:.4rem 1rem;align-items:flex-end;margin:.4rem 0}
form.filters fieldset{border:1px solid var(--line);padding:.2rem .5rem}form.filters label{margin-right:.5rem;white-space:nowrap}
.paging a{margin-left:.8rem}.bad{color:var(--bad)}
"""


def page(title: str, body: str) -> str:
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{esc(title)}</title>"
            f"<meta name=viewport content='width=device-width'><style>{CSS}</style></head><body>{body}</body></html>")


def _when(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:%Y-%m-%d %H:%M} UTC" if hasattr(value, "strftime") else esc(str(value))


def _run_link(dag_id: str, run_id: str) -> str:
    """A link to the Airflow run (opens in Airflow's own frame, not inside this view)."""
    if not run_id or run_id.startswith("lockstep__"):  # no run id, or one from the CLI's runner
        return esc(run_id or "-")
    return (f"<a target=_top href='/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}'>"
            f"{esc(run_id)}</a>")


def render_in_force(dag_id: str, cur: dict[str, Any] | None) -> str:
    if not cur:
        return "<p><span class='pill warn'>no certified generation</span> models read nothing yet</p>"
    note = f", reason: {esc(cur['reason'])}" if cur.get("reason") else ""
    expiry = f", expires {_when(cur['expires_at'])}" if cur.get("expires_at") else ""
    return (f"<p class=in-force><span class='pill ok'>in force</span> <b>{esc(cur['generation_id'])}</b> "
            f"(interval {esc(cur['interval'])}, {esc(cur['kind'])} by {esc(cur['who'])} at "
            f"{_when(cur['decided_at'])}{note}{expiry})</p>")


def render_matrix(base: str, m: dict[str, Any]) -> str:
    """The region x interval table: one row per region, one column per interval."""
    dag_id = m["pipeline"]
    if not m["intervals"]:
        return ("<p class='muted no-intervals'>no interval matches the filters</p>" if m.get("filters")
                else "<p class=muted>no intervals written yet</p>")
    head = "".join(
        f"<th><a href='{base}/pipelines/{quote(dag_id)}/intervals/{quote(k)}'>{esc(k)}</a></th>" for k in m["intervals"]
    )
    rows = []
    for region in m["regions"]:
        tds = []
        for k in m["intervals"]:
            c = m["cells"][k][region]
            cls = c["state"].replace(" ", "-")
            link = f"{base}/pipelines/{quote(dag_id)}/intervals/{quote(k)}"
            title = esc(c["reason"] or c["state"], quote=True)
            tds.append(
                f"<td class='{cls}' data-region='{esc(region)}' data-interval='{esc(k)}' title='{title}'>"
                f"<a href='{link}#{esc(region)}'><span class=state>{esc(c['state'])}</span>"
                f"<span class=reason>{esc(c['reason'])}</span></a></td>"
            )
        rows.append(f"<tr><th>{esc(region)}</th>{''.join(tds)}</tr>")
    return (f"<div class=scroll><table class=matrix id='matrix-{esc(dag_id)}'><tr><th>region \\ interval</th>"
            f"{head}</tr>{''.join(rows)}</table></div>")


def _why(d: dict[str, Any]) -> str:
    if d["reason"]:
        return esc(d["reason"])
    return f"{d['reasons']} blocking check(s)" if d["reasons"] else ""


def render_history(dag_id: str, log: list[dict[str, Any]]) -> str:
    if not log:
        return "<p class=muted>no decisions yet</p>"
    rows = "".join(
        f"<tr><td>{_when(d['decided_at'])}</td><td>{esc(d['interval'])}</td><td>{esc(d['kind'])}</td>"
        f"<td>{esc(d['status'])}</td><td class=who>{esc(d['who'])}"
        + (f"<br><span class=muted>approved by {esc(', '.join(d['approvers']))}</span>" if d.get("approvers") else "")
        + "</td>"
        f"<td>{_why(d)}</td>"
        f"<td>{_when(d['expires_at']) if d['expires_at'] else ''}</td><td><code>{esc(d['generation_id'])}</code></td>"
        f"<td>{_run_link(dag_id, d['run_id'])}</td></tr>"
        for d in log
    )
    return ("<div class=scroll><table class=history><tr><th>when</th><th>interval</th><th>kind</th><th>status</th>"
            f"<th>who</th><th>why</th><th>expires</th><th>generation</th><th>run</th></tr>{rows}</table></div>")


def _release_line(r: dict[str, Any]) -> str:
    return (f"<b>{esc(r['release_id'])}</b> ({esc(r['model_name'])} version {esc(r['model_version'])}, "
            f"feature version {esc(r['feature_version'])}, from {esc(r['effective_from'])}; {esc(r['kind'])} by "
            f"{esc(r['who'])}: {esc(r['why'])})")


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}" if isinstance(value, float) else esc(str(value))


def render_releases(rel: dict[str, Any] | None) -> str:
    """The model's section of a pipeline page: the release in force, the next one, the
    release history and each candidate's per-region shadow evaluations."""
    if rel is None:
        return ""
    out = [f"<h3 id=releases>model releases: {esc(rel['model'])}</h3>"]
    cur, interval = rel["in_force"], esc(rel["interval"] or "-")
    out.append(f"<p class=release-in-force><span class='pill ok'>in force</span> for {interval}: {_release_line(cur)}</p>"
               if cur else f"<p class=release-in-force><span class='pill warn'>no release in force</span> for "
               f"{interval}: nothing scores certified data</p>")
    if rel["upcoming"]:
        out.append(f"<p class=release-next><span class='pill warn'>next</span> {_release_line(rel['upcoming'])}</p>")
    if rel["history"]:
        rows = "".join(
            f"<tr class='{esc(r['kind'])}'><td>{esc(r['release_id'])}</td><td>{esc(r['kind'])}</td>"
            f"<td>{esc(r['model_version'])}</td><td>{esc(r['effective_from'] or '-')}</td><td>{esc(r['who'])}</td>"
            f"<td>{esc(r['why'])}{''.join('<br>' + esc(x.get('message', '')) for x in r.get('reasons') or [])}</td>"
            f"<td>{_when(r['released_at'])}</td></tr>" for r in rel["history"])
        out.append("<table class=releases><tr><th>release</th><th>kind</th><th>model version</th><th>from</th>"
                   f"<th>who</th><th>why</th><th>when</th></tr>{rows}</table>")
    else:
        out.append("<p class=muted>no release yet</p>")
    if rel["evaluations"] is not None:
        out.append("<h3>shadow evaluations (candidate vs the release in force, per region)</h3>")
        if not rel["evaluations"]:
            out.append("<p class=muted>no candidate shadow-scored yet</p>")
        cols = ("model_version", "region", "interval", "rows", "roc_auc", "baseline_release", "baseline_roc_auc",
                "psi", "score_mean")
        if rel["evaluations"]:
            body = "".join("<tr>" + "".join(f"<td>{_num(e.get(c))}</td>" for c in cols) + "</tr>"
                           for e in rel["evaluations"])
            out.append("<table class=shadow><tr><th>candidate</th><th>region</th><th>interval</th><th>rows</th>"
                       "<th>ROC AUC</th><th>vs release</th><th>its ROC AUC</th><th>PSI</th><th>mean score</th></tr>"
                       f"{body}</table>")
    return "".join(out)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} s"


def render_erasures(rows: list[dict[str, Any]] | None) -> str:
    """The erasures section of a pipeline page (``lockstep erase --status``): pending and
    completed, with the time from request to the physical removal of the older files."""
    if rows is None:
        return ""
    out = ["<h3 id=erasures>erasures</h3>"]
    if not rows:
        return out[0] + "<p class=muted>none</p>"
    body = "".join(
        f"<tr class='{'ok' if r['state'] == 'completed' else 'pending'}'><td>{esc(r['erasure_id'] or r['request_id'])}</td>"
        f"<td>{esc(r['state'])}</td><td>{esc(r['column'])}</td><td>{_num(r['values_count'])}</td><td>{_num(r['rows'])}</td>"
        f"<td>{esc(', '.join(r['regions']) or '-')}</td><td>{esc(r['who'])}</td><td>{esc(r['reason'])}</td>"
        f"<td>{_when(r['requested_at'])}</td><td>{_when(r['removed_at'])}</td>"
        f"<td>{_seconds(r['seconds_to_removal'])}</td></tr>"
        for r in rows)
    out.append("<table class=erasures><tr><th>erasure / request</th><th>state</th><th>column</th><th>values</th>"
               "<th>rows</th><th>regions</th><th>who</th><th>why</th><th>requested</th><th>removed</th>"
               f"<th>request to removal</th></tr>{body}</table>")
    return "".join(out)


def render_pipeline(base: str, m: dict[str, Any], *, history: bool, controls: str = "") -> str:
    """A pipeline's section; ``controls``: the filters and paging links shown above its matrix."""
    dag_id = m["pipeline"]
    out = [f"<h2 id='{esc(dag_id)}'><a href='{base}/pipelines/{quote(dag_id)}'>{esc(dag_id)}</a></h2>",
           render_in_force(dag_id, m["in_force"]), controls, render_matrix(base, m)]
    if history:
        out += ["<h3>generation in force: members</h3>"]
        members = (m["in_force"] or {}).get("members") or {}
        out.append("<p class=muted>none</p>" if not members else
                   "<table><tr><th>region/layer/table</th><th>Delta version</th></tr>"
                   + "".join(f"<tr><td>{esc(k)}</td><td>{v}</td></tr>" for k, v in sorted(members.items()))
                   + "</table>")
        out += ["<h3>decision history</h3>", render_history(dag_id, m["decisions"])]
        out.append(render_releases(m.get("releases")))
        out.append(render_erasures(m.get("erasures")))
    return "".join(out)


def _missing(value: Any) -> bool:
    """No number to show: none at all, or a NaN (a statistic over no rows)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def _fmt(value: Any) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "<span class=muted>no data</span>"
    return esc(json.dumps(value, default=str)) if value is not None else "-"


def _check_row(f: dict[str, Any], tag: str) -> str:
    keys, cols = _keys_and_columns(f)
    return (f"<tr id='{esc(f['region'])}' class=failed><td>{tag}</td><td><code>{esc(f['check_id'])}</code></td>"
            f"<td>{esc(f['region'])}</td><td>{esc(f['table'])}</td><td class=keys>{keys}</td><td>{cols}</td>"
            f"<td>{_fmt(f['observed'])}</td><td>{_fmt(f['threshold'])}</td><td class=msg>{esc(f['message'])}</td></tr>")


_CHECKS_HEAD = ("<tr><th></th><th>check</th><th>region</th><th>table</th><th>keys</th><th>columns</th>"
                "<th>observed</th><th>threshold</th><th>message</th></tr>")


def render_checks(failed: list[dict[str, Any]], *, certified: bool) -> str:
    """The checks that failed: what blocks first (a table), then the warnings folded, one
    ``<details>`` per check with its count; a certified interval's are warnings only."""
    blocking = [f for f in failed if f["blocking"]]
    warnings: dict[str, list[dict[str, Any]]] = {}
    for f in failed:
        if not f["blocking"]:
            warnings.setdefault(str(f["check_id"]), []).append(f)
    out = ["<section class=checks>"]
    if blocking:
        rows = "".join(_check_row(f, "<span class='pill bad'>block</span>") for f in blocking)
        out.append(f"<h2 class=blocking>blocking checks ({len(blocking)})</h2>"
                   f"<div class=scroll><table class=failed-checks>{_CHECKS_HEAD}{rows}</table></div>")
    elif not certified and failed:
        out.append("<p class=muted>no check blocks in the latest run</p>")
    if warnings:
        n = sum(len(v) for v in warnings.values())
        out.append(f"<h2 class=warnings>warnings ({n})</h2>")
        for check_id, group in sorted(warnings.items()):
            where = ", ".join(sorted({str(f["region"]) for f in group}))
            rows = "".join(_check_row(f, f"<span class='pill warn'>{esc(f['policy'])}</span>") for f in group)
            out.append(f"<details class=warning data-check='{esc(check_id, quote=True)}'><summary><code>"
                       f"{esc(check_id)}</code> <span class=count>({len(group)})</span> <span class=muted>{esc(where)}"
                       f"</span></summary><div class=scroll><table class=warning-checks>{_CHECKS_HEAD}{rows}</table>"
                       "</div></details>")
    if not failed:
        out.append("<p class=muted>no failed checks in the latest run</p>")
    return "".join(out) + "</section>"


def _keys_and_columns(f: dict[str, Any]) -> tuple[str, str]:
    det = f.get("details") or {}
    keys: list[str] = []
    for label, key in (("changed", "changed_keys"), ("only in region", "only_in_region"),
                       ("missing in region", "missing_in_region")):
        if det.get(key):
            shown = ", ".join(str(k) for k in det[key][:20])
            more = f" … ({len(det[key])})" if len(det[key]) > 20 else ""
            keys.append(f"{label}: {shown}{more}")
    columns = det.get("changed_columns") or ([det["column"]] if det.get("column") else [])
    return "<br>".join(esc(k) for k in keys) or "-", esc(", ".join(str(c) for c in columns)) or "-"


def render_drill_down(base: str, spec: Any, ex: dict[str, Any], requests: str = "",
                      regions: list[str] | None = None, *, note: str = "") -> str:
    """The interval's page; ``requests``: its requests section (HTML), shown below its decisions;
    ``regions``: those the reader may see (their Data Docs are linked; default every region);
    ``note``: shown under the title (the DAG-run tab names its run)."""
    dag_id = spec.name
    key = ex["interval"]
    state = (f"<span class='pill ok'>in force: {esc(ex['in_force'])}</span>" if ex["in_force"]
             else "<span class='pill bad'>not certified</span>")
    docs = " ".join(f"<a href='{base}/pipelines/{quote(dag_id)}/docs/{quote(r)}/index.html'>{esc(r)}</a>"
                    for r in (spec.regions if regions is None else regions))
    out = [f"<div class=crumbs><a href='{base}/'>Lockstep</a> / <a href='{base}/pipelines/{quote(dag_id)}'>"
           f"{esc(dag_id)}</a> / {esc(key)}</div><h1>{esc(dag_id)} · {esc(key)}</h1>{note}",
           f"<p>{state} · run {_run_link(dag_id, ex['run_id'] or '')} · "
           f"Data Docs: {docs}</p>"]
    out.append("<h2>decisions</h2>" + (render_history(dag_id, [
        {**d, "interval": key, "reasons": d["blocking_reasons"]} for d in reversed(ex["decisions"])
    ]) if ex["decisions"] else "<p class=muted>no decision about this interval</p>") + requests)

    out.append(render_checks(ex["failed"], certified=bool(ex["in_force"])))

    out.append("<h2>drift: PSI vs pooled other regions</h2>")
    if ex["drift"]:
        columns = sorted({c for cols in ex["drift"].values() for c in cols})
        head = "".join(f"<th>{esc(c)}</th>" for c in columns)
        rows = []
        for region in [r for r in spec.regions if r in ex["drift"]]:  # the regions the user may see
            cells = ex["drift"].get(region, {})
            tds = []
            for c in columns:
                v = cells.get(c)
                if v is None:
                    tds.append("<td></td>")
                    continue
                psi = v.get("psi_pooled")
                if _missing(psi):  # nothing to compare: the region holds no rows for the column
                    tds.append("<td class='h no-data'>no data</td>")
                    continue
                # heat: white at 0, full red at PSI 0.5 and above
                alpha = min(1.0, (psi or 0) / 0.5)
                bg = f"rgba(207,34,46,{alpha:.2f})" if v["fail"] else f"rgba(207,34,46,{alpha * 0.5:.2f})"
                txt = f"{psi:.3f}"
                ks = v.get("ks_pooled")
                tds.append(f"<td class=h style='background:{bg}' title='KS {'-' if _missing(ks) else round(ks, 3)}'>"
                           f"{'<b>' + txt + '</b>' if v['fail'] else txt}</td>")
            rows.append(f"<tr><th>{esc(region)}</th>{''.join(tds)}</tr>")
        out.append(f"<div class=scroll><table class=heat><tr><th>region</th>{head}</tr>{''.join(rows)}</table></div>")
    else:
        out.append("<p class=muted>no drift checks ran</p>")

    out.append(f"<h2>quarantine ({sum(q['rows'] for q in ex['quarantine']):,} rows)</h2>")
    if ex["quarantine"]:
        for q in ex["quarantine"]:
            out.append(f"<h3>{esc(q['region'])} / {esc(q['table'])}: {q['rows']:,} rows</h3>"
                       f"<p class=muted>the rows stay in the region: {esc(q['uri'])} at version {q['version']}</p>")
    else:
        out.append("<p class=muted>no rows quarantined</p>")
    return "".join(out)


INTRO = ("<h1>Lockstep</h1><p class=muted>Models read only certified generations. Fix, re-run, override or roll "
         "back with <code>lockstep explain | run | override | rollback</code>.</p>")
