"""Process groups of an embedded Airflow: signalling a component with every descendant, the pid
file that lets the next start end what a harness killed hard left behind, and log tails.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["PIDS_FILE", "descendants", "kill_stale", "record_pids", "signal_all", "signal_group", "tail"]

#: in the home: component -> [pid, create time] of every running component
PIDS_FILE = "lockstep-pids.json"


def descendants(pid: int) -> list[Any]:
    """Every process below ``pid`` (``psutil.Process`` objects); none once it has ended."""
    import psutil

    try:
        return list(psutil.Process(pid).children(recursive=True))
    except psutil.Error:
        return []


def signal_group(pgid: int, sig: int) -> None:
    """``sig`` to a process group; nothing when the group is gone."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def signal_all(procs: Iterable[Any], sig: int) -> None:
    """``sig`` to each of ``procs`` (``psutil.Process``) still running."""
    import psutil

    for proc in procs:
        try:
            proc.send_signal(sig)
        except psutil.Error:
            pass


def record_pids(home: Path, procs: Mapping[str, subprocess.Popen[bytes]]) -> None:
    """Write ``<home>/lockstep-pids.json``: what :func:`kill_stale` ends after a hard kill."""
    import psutil

    recorded = {}
    for name, proc in procs.items():
        try:
            recorded[name] = [proc.pid, psutil.Process(proc.pid).create_time()]
        except psutil.Error:
            continue
    (home / PIDS_FILE).write_text(json.dumps(recorded))


def kill_stale(home: Path) -> list[int]:
    """End the processes a harness killed hard left behind in ``home`` (from its pid file),
    and only those still running an ``airflow`` command since the time recorded."""
    import psutil

    path = home / PIDS_FILE
    if not path.exists():
        return []
    ended: list[int] = []
    try:
        recorded = json.loads(path.read_text())
    except ValueError:
        recorded = {}
    for pid, create_time in recorded.values():
        try:
            proc = psutil.Process(pid)
            same = abs(proc.create_time() - create_time) < 1.0
            if not same or "airflow" not in " ".join(proc.cmdline()):
                continue
            family = [proc, *proc.children(recursive=True)]
        except psutil.Error:
            continue
        signal_all(family, signal.SIGTERM)
        _, alive = psutil.wait_procs(family, timeout=10)
        signal_all(alive, signal.SIGKILL)
        ended.append(pid)
    path.unlink(missing_ok=True)
    return ended


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` of a log ("" when it cannot be read)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
