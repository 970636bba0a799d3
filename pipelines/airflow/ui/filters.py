"""The filter form and the paging links above a pipeline's matrix: pure functions of the
dict :func:`~pipelines.matrix_page.matrix_page` returns (its ``filters`` and ``paging``).

The form is a plain ``GET`` of the same page: ``region`` and ``state`` repeat (checkboxes),
``start`` and ``end`` are interval keys (``2026-01-01``, ``2026-01-01T05``), ``size`` the
columns per page; the links keep the filters and move ``page`` (older: +1, newer: -1), or on
the newest page move ``end`` forward, up to the interval open now.
"""

from __future__ import annotations

import html
from typing import Any
from urllib.parse import quote, urlencode

from pipelines.matrix import STATES

__all__ = ["query", "render_filters", "render_paging"]

esc = html.escape


def query(m: dict[str, Any], **changes: Any) -> str:
    """The query string of ``m``'s filters and page, with ``changes`` (``None`` drops one)."""
    f, p = m["filters"], m["paging"]
    params: dict[str, Any] = {"region": f["regions"], "state": [s.replace(" ", "-") for s in f["states"]],
                              "start": f["start"], "end": f["end"], "size": p["size"], "page": p["page"] or None}
    params.update(changes)
    pairs = [(k, x) for k, v in params.items() if v not in (None, "", [])
             for x in (v if isinstance(v, list) else [v])]
    return urlencode(pairs)


def render_filters(base: str, m: dict[str, Any], all_regions: list[str], error: str = "") -> str:
    """The form: regions and states as checkboxes, the date range, the page size."""
    f = m.get("filters") or {"regions": [], "states": [], "start": "", "end": ""}
    action = f"{base}/pipelines/{quote(m['pipeline'])}"
    regions = "".join(
        f"<label><input type=checkbox name=region value='{esc(r, quote=True)}'"
        f"{' checked' if r in f['regions'] else ''}> {esc(r)}</label>" for r in all_regions)
    states = "".join(
        f"<label><input type=checkbox name=state value='{esc(s.replace(' ', '-'), quote=True)}'"
        f"{' checked' if s in f['states'] else ''}> {esc(s)}</label>" for s in STATES)
    size = (m.get("paging") or {}).get("size", "")
    problem = f"<p class='bad filter-error'>{esc(error)}</p>" if error else ""
    return (f"<form class=filters method=get action='{action}'>"
            f"<fieldset><legend>regions</legend>{regions}</fieldset>"
            f"<fieldset><legend>states</legend>{states}</fieldset>"
            f"<fieldset><legend>intervals</legend><label>from <input name=start size=13 "
            f"value='{esc(str(f['start'] or ''), quote=True)}' placeholder=2026-01-01></label> "
            f"<label>to <input name=end size=13 value='{esc(str(f['end'] or ''), quote=True)}'></label> "
            f"<label>per page <input name=size size=3 value='{esc(str(size), quote=True)}'></label></fieldset>"
            f"<button type=submit>show</button> <a href='{action}'>reset</a></form>{problem}")


def render_paging(base: str, m: dict[str, Any]) -> str:
    """Where the page is in the range, and the links to the older and newer intervals."""
    p = m["paging"]
    url = f"{base}/pipelines/{quote(m['pipeline'])}?"
    links = []
    if p["older"]:
        links.append(f"<a class=older href='{url}{esc(query(m, page=p['page'] + 1))}'>&larr; older {p['size']}</a>")
    if p["newer"]:
        links.append(f"<a class=newer href='{url}{esc(query(m, page=p['page'] - 1 or None))}'>newer {p['size']} &rarr;</a>")
    elif p.get("later_end"):
        links.append(f"<a class=newer href='{url}{esc(query(m, end=p['later_end'], page=None))}'>"
                     f"later, up to {esc(p['later_end'])} &rarr;</a>")
    shown = f"{esc(p['first'])} to {esc(p['last'])}" if p["first"] else "no interval matches"
    return (f"<p class=paging><span class=muted>{shown} · page {p['page'] + 1} of {p['pages']} · "
            f"{p['total']} interval(s) from {esc(p['range_start'])} to {esc(p['range_end'])}</span> "
            + " ".join(links) + "</p>")
