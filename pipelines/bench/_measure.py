"""Measuring helpers shared by the benchmarks.

Every figure comes from :func:`interleaved`: the reference and the subjects run in turn
(A B C, B C A, C A B, ...), each run in a fresh process, at least three times, and the
figure keeps the min and the median of each. A phase imports what it needs first, then
calls :func:`mark_baseline`; its RSS is reported above that baseline (so import costs never
count), and it times only its work, returning ``{"seconds": ...}``.

:func:`figure` is the shape ``lockstep bench --json`` prints for every measured goal:
``{name, value, unit, reference, ratio, goal, met}``.
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import statistics
import time
from collections.abc import Callable
from queue import Empty
from typing import Any

_BASELINE: list[float] = []


def rss_mib() -> float:
    """Current resident set size of this process, in MiB."""
    import psutil

    return float(psutil.Process().memory_info().rss) / 2**20


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def mark_baseline() -> None:
    """Call after a phase's imports: its RSS is reported above this point."""
    _BASELINE[:] = [rss_mib()]


def _child(fn: Callable[..., Any], args: tuple[Any, ...], queue: Any) -> None:
    try:
        _BASELINE[:] = [rss_mib()]
        t0 = time.perf_counter()
        value = fn(*args)
        seconds = time.perf_counter() - t0
        queue.put({"ok": True, "seconds": seconds, "peak_rss_mib": peak_rss_mib(),
                   "baseline_rss_mib": _BASELINE[0], "value": value})
    except BaseException as exc:  # report any failure to the parent
        queue.put({"ok": False, "error": f"{type(exc).__name__}: {exc}"})


def in_subprocess(fn: Callable[..., Any], *args: Any) -> dict[str, Any]:
    """Run ``fn(*args)`` in a fresh (forkserver) process: seconds, peak and baseline RSS, value."""
    ctx = mp.get_context("forkserver")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(fn, args, queue))
    proc.start()
    while True:  # a child that dies without reporting (killed, out of memory) is an error, not a hang
        try:
            out = queue.get(timeout=1.0)
            break
        except Empty:
            if proc.is_alive():
                continue
            try:  # it may have reported just before it ended
                out = queue.get(timeout=1.0)
                break
            except Empty:
                raise RuntimeError(f"{getattr(fn, '__name__', fn)}: its benchmark process ended without a result "
                                   f"(exit code {proc.exitcode}{', killed by a signal' if (proc.exitcode or 0) < 0 else ''})"
                                   ) from None
    proc.join()
    if not out["ok"]:
        raise RuntimeError(out["error"])
    return dict(out)


def interleaved(phases: dict[str, tuple[Callable[..., Any], tuple[Any, ...]]], reps: int = 3,
                ) -> dict[str, dict[str, Any]]:
    """Run every phase ``reps`` times, rotating the order each round so no phase always runs
    first or last; per phase: min and median seconds (the phase's own ``seconds`` when it
    returns one), peak RSS above its baseline (max over runs), and the last value."""
    names = list(phases)
    runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    for r in range(max(1, reps)):
        for n in names[r % len(names):] + names[: r % len(names)]:
            fn, args = phases[n]
            runs[n].append(in_subprocess(fn, *args))
    out: dict[str, dict[str, Any]] = {}
    for n, rs in runs.items():
        secs = [float(x["value"]["seconds"]) if isinstance(x["value"], dict) and "seconds" in x["value"]
                else float(x["seconds"]) for x in rs]
        out[n] = {
            "min_s": round(min(secs), 3), "median_s": round(statistics.median(secs), 3), "runs_s": [round(s, 3) for s in secs],
            "peak_rss_mib": round(max(x["peak_rss_mib"] for x in rs), 1),
            "rss_above_baseline_mib": round(max(0.0, *(x["peak_rss_mib"] - x["baseline_rss_mib"] for x in rs)), 1),
            "value": rs[-1]["value"],
        }
    return out


def figure(name: str, value: float, unit: str, reference: str, ratio: float | None, goal: str | None,
           met: bool | None, **extra: Any) -> dict[str, Any]:
    """One benchmark figure as ``lockstep bench --json`` prints it."""
    return {"name": name, "value": round(value, 3), "unit": unit, "reference": reference,
            "ratio": None if ratio is None else round(ratio, 2), "goal": goal, "met": met, **extra}


def ratio_figure(name: str, subject: dict[str, Any], ref: dict[str, Any], reference: str, goal: float | None,
                 **extra: Any) -> dict[str, Any]:
    """Subject / reference on the median of interleaved runs (min ratio alongside); the goal
    is ``ratio <= goal``."""
    ratio = subject["median_s"] / ref["median_s"]
    return figure(name, subject["median_s"], "s", f"{reference} ({ref['median_s']:.3f} s median)", ratio,
                  None if goal is None else f"<= {goal:g}x", None if goal is None else ratio <= goal,
                  min_ratio=round(subject["min_s"] / ref["min_s"], 2), runs_s=subject["runs_s"],
                  reference_runs_s=ref["runs_s"], **extra)


def measure_table(title: str) -> Any:
    """The rich table every benchmark prints: measure, value, goal."""
    from rich.table import Table

    table = Table(title=title)
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("goal", justify="right")
    return table


def print_figures(console: Any, title: str, figures: list[dict[str, Any]]) -> None:
    from rich.table import Table

    t = Table(title=title)
    for col in ("figure", "value", "ratio (median; min)", "reference", "goal", "met"):
        t.add_column(col)
    for f in figures:
        ratio = "" if f["ratio"] is None else f"{f['ratio']}x" + (f"; {f['min_ratio']}x" if "min_ratio" in f else "")
        met = "" if f["met"] is None else ("[green]yes" if f["met"] else "[red]no")
        t.add_row(f["name"], f"{f['value']:,} {f['unit']}", ratio, f["reference"], f["goal"] or "", met)
    console.print(t)
