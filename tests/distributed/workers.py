"""Celery workers for a test's Airflow: ``airflow celery worker --queues ...`` processes,
each with an environment of its own (its credentials only), stopped by the test that
started them.

    with CeleryWorker("regions-a", af.env, {"LOCKSTEP_S3_EU_WEST_KEY_ID": ...}, log_dir) as w:
        ...
        w.kill()      # SIGKILL the worker and every process it started, mid-task
        w.start()     # the same worker again
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import psutil


class CeleryWorker:
    def __init__(self, name: str, queues: list[str], env: Mapping[str, str], own_env: Mapping[str, str],
                 log_dir: Path, *, concurrency: int = 2) -> None:
        self.name = name
        self.queues = queues
        # the Airflow configuration of the deployment, minus every storage credential; then
        # this worker's own
        self.env = {k: v for k, v in env.items() if not k.startswith(("LOCKSTEP_S3_", "AWS_"))}
        self.env.update(own_env)
        self.log_path = Path(log_dir) / f"worker-{name}.log"
        self.concurrency = concurrency
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def __enter__(self) -> CeleryWorker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        log = self.log_path.open("ab")
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "airflow", "celery", "worker", "--queues", ",".join(self.queues),
                 "--concurrency", str(self.concurrency), "--celery-hostname", f"{self.name}-{self.starts}@%h",
                 "--skip-serve-logs"],
                env=self.env, cwd=self.env.get("AIRFLOW_HOME"), stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            log.close()
        self.starts += 1

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Until Celery reports the worker ready (``celery@... ready.`` in its log)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            if f"{self.name}-{self.starts - 1}@" in self._log() and " ready." in self._log().split(
                    f"{self.name}-{self.starts - 1}@", 1)[-1]:
                return
            time.sleep(0.5)
        raise RuntimeError(f"celery worker {self.name} not ready after {timeout:.0f}s:\n{self._log()[-3000:]}")

    def _log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"celery worker {self.name} exited {self.proc.returncode}:\n{self._log()[-3000:]}")

    def family(self) -> list[Any]:
        if self.proc is None:
            return []
        try:
            root = psutil.Process(self.proc.pid)
            return [root, *root.children(recursive=True)]
        except psutil.Error:
            return []

    def kill(self) -> list[int]:
        """SIGKILL the worker and every process it started (tasks included); their pids."""
        family = self.family()
        for p in family:
            try:
                p.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(family, timeout=10)
        if self.proc is not None:
            self.proc.wait(timeout=10)
        self.proc = None
        return [p.pid for p in family]

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (a warm shutdown), then SIGKILL to whatever is left."""
        stop_all([self], timeout=timeout)


def stop_all(workers: Iterable[CeleryWorker], timeout: float = 30.0) -> None:
    """Stop workers together: SIGTERM to each (a warm shutdown), one wait for all of them,
    then SIGKILL to whatever is left (one by one, their waits would add up)."""
    running = [(w, w.proc) for w in workers if w.proc is not None]
    family = [p for w, _ in running for p in w.family()]
    for _, proc in running:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    _, alive = psutil.wait_procs(family, timeout=timeout)
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass
    for w, proc in running:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)
        w.proc = None
