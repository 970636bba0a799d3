"""Measuring helpers shared by the benchmarks: run a function in a fresh process and report
its wall time and peak RSS, so one phase's memory never counts against another's."""

from __future__ import annotations

import multiprocessing as mp
import resource
import time
from collections.abc import Callable
from typing import Any


def rss_mib() -> float:
    """Current resident set size of this process, in MiB."""
    import psutil

    return float(psutil.Process().memory_info().rss) / 2**20


def _child(fn: Callable[..., Any], args: tuple[Any, ...], queue: Any) -> None:
    try:
        baseline = rss_mib()
        t0 = time.perf_counter()
        value = fn(*args)
        seconds = time.perf_counter() - t0
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        queue.put({"ok": True, "seconds": seconds, "peak_rss_mib": peak, "baseline_rss_mib": baseline, "value": value})
    except BaseException as exc:  # report any failure to the parent
        queue.put({"ok": False, "error": f"{type(exc).__name__}: {exc}"})


def in_subprocess(fn: Callable[..., Any], *args: Any) -> dict[str, Any]:
    """Run ``fn(*args)`` in a fresh (forkserver) process: seconds, peak and baseline RSS, value."""
    ctx = mp.get_context("forkserver")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(fn, args, queue))
    proc.start()
    out = queue.get()
    proc.join()
    if not out["ok"]:
        raise RuntimeError(out["error"])
    return dict(out)


def measure_table(title: str) -> Any:
    """The rich table every benchmark prints: measure, value, goal."""
    from rich.table import Table

    table = Table(title=title)
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("goal", justify="right")
    return table
