"""A warm interpreter for Airflow's task processes: importing this module imports, once, what
every Lockstep task imports (the steps, polars, deltalake, pyarrow, Great Expectations, the
DAG factory and Airflow's task runner), so that processes forked from the importing one
inherit them instead of paying the imports per task.

Airflow 3 runs each task in a process its supervisor forks from the executor's worker:

- LocalExecutor: with ``[scheduler] mp_start_method = forkserver`` and
  ``[scheduler] mp_forkserver_preload = pipelines.airflow.warm``, the scheduler's fork server
  imports this module once; every LocalExecutor worker forks from the fork server, and every task
  process from a worker.
- CeleryExecutor: Celery's prefork pool forks from the worker's main process, which reads
  ``[celery] celery_config_options``; ``pipelines.airflow.warm.CELERY_CONFIG`` (Airflow's own
  default Celery configuration, unchanged) makes it import this module first.

Imports only: nothing here runs a polars query, opens a Delta table, loads a compiled kernel or
starts a thread pool. polars' compute pool, deltalake's runtime (which refuses to run in a
forked child of the process that created it) and numba's threading layer are created by each
task process on first use, so a forked child starts as clean as a fresh one, only faster.
A module that fails to import is skipped (the task then imports it itself, and fails there
with the task's own error).
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

__all__ = ["PRELOAD", "preload"]  # and CELERY_CONFIG, built on first read (__getattr__)

log = logging.getLogger(__name__)

#: what a task process of a Lockstep DAG imports (measured: the modules an interval run adds)
PRELOAD = (
    "airflow.sdk.execution_time.task_runner",
    "pipelines.airflow.dag",
    "pipelines.airflow.metrics",
    "pipelines.runner",
    "pipelines.runner.steps",
    "pipelines.control.evidence",
    "pipelines.features.coverage",
    "pipelines.features.fraud",
    "pipelines.evidence.hashing",
    "pipelines.evidence.profile",
    "pipelines.validation",
    "pipelines.validation.native",
    "pipelines.validation.gx_engine",
    "pipelines.reconcile",
    "pipelines.certify",
)


def preload(modules: tuple[str, ...] = PRELOAD) -> list[str]:
    """Import ``modules``, Great Expectations (through its one import path) and Airflow's plugins
    (a task process loads them for its listener manager, ``plugins/`` with Lockstep's view among
    them: seconds under a fork server that had not); the names that loaded."""
    loaded = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            log.warning("not preloaded for task processes: %s (%s)", name, exc)
            continue
        loaded.append(name)
    try:
        from pipelines.validation.gx import import_gx

        import_gx()
        loaded.append("great_expectations")
    except ImportError as exc:
        log.warning("not preloaded for task processes: great_expectations (%s)", exc)
    try:
        from airflow.sdk.listener import get_listener_manager

        get_listener_manager()  # cached: a forked task process finds its plugins loaded
        loaded.append("airflow plugins")
    except Exception as exc:  # a broken plugin fails in the task, with the task's own error
        log.warning("Airflow's plugins not preloaded for task processes: %s", exc)
    return loaded


def __getattr__(name: str) -> Any:
    # read by ``airflow celery worker`` through [celery] celery_config_options, in its main
    # process, before the prefork pool starts: Airflow's default configuration, unchanged
    if name == "CELERY_CONFIG":
        from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG

        return DEFAULT_CELERY_CONFIG
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


preload()
