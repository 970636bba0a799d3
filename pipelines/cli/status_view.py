"""``lockstep status`` for people: the region x interval certification matrix (rich).

One row per region, one column per interval (the newest seven by default), one symbol per
cell, so 12 regions x 7 intervals fit 80 columns; under it the generation in force and the
first reason of each blocked interval. ``--json`` prints :func:`pipelines.status.pipeline_status`
unchanged; the matrix comes from :func:`pipelines.matrix.certification_matrix`, the same fold
of the certification log the Lockstep view in Airflow shows.
"""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

#: state -> (symbol, style)
SYMBOLS = {
    "certified": ("✓", "green"),
    "stale": ("!", "yellow"),
    "blocked": ("✗", "bold red"),
    "held": ("-", "red"),
    "overridden": ("O", "magenta"),
    "rolled back": ("↺", "yellow"),
    "not run": ("·", "dim"),
}


def _header(key: str) -> str:
    """'2026-01-05' -> '01-05'; '2026-01-05T07' -> '05T07'."""
    return key[5:] if "T" not in key else key[8:]


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(1, width - 1)] + "…"


def matrix_table(st: dict[str, Any], m: dict[str, Any]) -> Table:
    """The region x interval table, with each region's latest row count."""
    latest: dict[str, int] = {}
    for t in st["tables"]:
        if t["table"].startswith("raw/"):
            latest[t["region"]] = latest.get(t["region"], 0) + int(t["latest_rows"])
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("region", no_wrap=True)
    for key in m["intervals"]:
        table.add_column(_header(key), justify="center", no_wrap=True)
    table.add_column("raw rows", justify="right", no_wrap=True)
    for region in m["regions"]:
        cells = []
        for key in m["intervals"]:
            symbol, style = SYMBOLS.get(m["cells"][key][region]["state"], ("?", ""))
            cells.append(Text(symbol, style=style))
        table.add_row(region, *cells, f"{latest[region]:,}" if region in latest else "-")
    return table


def render_status(console: Console, st: dict[str, Any], m: dict[str, Any], ref: str | None = None) -> None:
    """Print the matrix, a legend, the generation in force and why intervals are blocked.
    ``ref``: the pipeline as the suggested commands name it (default: its name)."""
    width = min(console.width, 100)
    ref = ref or m["pipeline"]
    if m["intervals"]:
        console.print(_cut(f"{m['pipeline']}: certification by region and interval", width), style="bold",
                      highlight=False)
        console.print(matrix_table(st, m))
        console.print(Text("  ").join(Text(f"{sym} {state}", style=style) for state, (sym, style) in SYMBOLS.items()))
    else:
        console.print(f"{m['pipeline']}: nothing written yet under {st['root']}")
    cur = st["certified"]
    if cur:
        console.print(_cut(f"in force: {cur['generation_id']} ({cur['kind']} by {cur['who']} at "
                           f"{cur['decided_at']:%Y-%m-%d %H:%M})", width), style="green", highlight=False)
    else:
        console.print("in force: no certified generation", style="yellow")
    for b in st["blocked"]:
        first = b["reasons"][0] if b["reasons"] else "no reason recorded"
        more = f" (+{len(b['reasons']) - 1} more)" if len(b["reasons"]) > 1 else ""
        where = f" (at fault: {', '.join(b['at_fault'])})" if b.get("at_fault") else ""
        console.print(_cut(f"blocked {b['interval']}{where}: {first}", width - len(more)) + more, style="red",
                      highlight=False)
    for s in st.get("stale", []):
        console.print(_cut(f"stale {s['interval']}: {s['why'].removeprefix('stale: ')}", width), style="yellow",
                      highlight=False)
    for o in st["overrides_in_force"]:
        console.print(_cut(f"override {o['interval']} by {o['who']}: {o['reason']}", width), style="magenta",
                      highlight=False)
    if st.get("stale"):
        keys = [s["interval"] for s in st["stale"]]
        # a command is never cut short (a path may be long): the terminal wraps it
        console.print(f"re-certify: lockstep backfill {ref} --start {keys[0][:10]} --end {keys[-1][:10]}",
                      style="dim", highlight=False, soft_wrap=True)
    if st["blocked"]:
        console.print(f"why: lockstep explain {ref} --date {st['blocked'][-1]['interval']}",
                      style="dim", highlight=False, soft_wrap=True)
