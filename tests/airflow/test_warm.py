"""The warm interpreter Airflow forks task processes from (pipelines/airflow/warm.py): importing it
starts no compute pool or runtime a forked child would inherit half-made, and a process forked
from it runs a whole interval (ingest, GX and native validation, transform, evidence, reconcile,
the gate's decision on Delta) exactly as a fresh one does. The real scheduler's tasks starting
warm is asserted in test_e2e_pipeline.py (LocalExecutor) and tests/distributed/test_celery.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from pipelines.airflow.embedded import airflow_env, free_port
from pipelines.airflow.embedded.environment import WARM_MODULE
from tests.conftest import REPO

# run in a fresh interpreter: the preload, then a fork, as Airflow's supervisor forks a task
SCRIPT = textwrap.dedent("""
    import json, os, sys, time
    t0 = time.monotonic()
    import pipelines.airflow.warm as warm
    preload_s = time.monotonic() - t0
    threads = sorted(open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task"))
    from pathlib import Path
    from tests.conftest import small_spec_data
    from pipelines.spec import Interval, parse_spec
    data = small_spec_data(regions=2, rows=200, name="warm_fork")
    data["storage"] = {"root": sys.argv[1]}
    data["validation"]["suites_dir"] = str(Path(sys.argv[2]) / "expectations")
    spec = parse_spec(data, "warm_fork")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the task process
        os.close(r)
        before = set(sys.modules)
        t0 = time.monotonic()
        from pipelines.runner import run_interval
        run = run_interval(spec, Interval.for_date("2026-01-01"))
        out = {"decision": run.decision.status if run.decision else None, "run_s": time.monotonic() - t0,
               "imported": sorted(set(sys.modules) - before)}
        os.write(w, json.dumps(out).encode())
        os._exit(0)
    os.close(w)
    child = json.loads(os.read(r, 1 << 20) or b"null")
    _, status = os.waitpid(pid, 0)
    print(json.dumps({"status": status, "child": child, "threads": threads, "preload_s": preload_s}))
""")


def test_a_task_forked_from_the_warm_interpreter_runs_an_interval(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "lake"), str(REPO)],
                         capture_output=True, text=True, timeout=600, cwd=REPO, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["status"] == 0 and result["child"] is not None, out.stderr[-3000:]
    assert result["child"]["decision"] == "certified", result
    # the heavy packages came from the parent (the child loads only some lazy submodules)
    heavy = {"polars", "deltalake", "pyarrow", "great_expectations", "pandas", "numpy",
             "pipelines.runner.steps", "pipelines.validation.gx_engine", "pipelines.certify"}
    assert not heavy & set(result["child"]["imported"]), result["child"]["imported"]
    # imports only: no polars compute pool (its threads would not exist in the child, their
    # locks would), no tokio runtime; jemalloc's and polars' idle spill cleaner are fork-aware
    started = [t for t in result["threads"] if t not in ("python", "jemalloc_bg_thd", "polars-ooc-clea")]
    assert started == [], result["threads"]


RESOLVE = textwrap.dedent("""
    import json, multiprocessing
    from airflow.utils.process_utils import set_component_mp_start_method
    from airflow.providers.celery.executors.celery_executor_utils import get_celery_configuration
    from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG
    set_component_mp_start_method("scheduler")
    from multiprocessing import forkserver
    print(json.dumps({"method": multiprocessing.get_start_method(),
                      "preload": forkserver._forkserver._preload_modules,
                      "celery_default": get_celery_configuration() is DEFAULT_CELERY_CONFIG}))
""")


def test_the_embedded_airflow_forks_tasks_from_the_warm_interpreter(tmp_path: Path) -> None:
    """What Airflow itself makes of the embedded configuration: the scheduler's start method and
    fork-server preload, and Celery's configuration (Airflow's default, through the warm module)."""
    env = airflow_env(tmp_path / "home", port=free_port(), dags_folder=tmp_path / "dags")
    out = subprocess.run([sys.executable, "-c", RESOLVE], env={**os.environ, **env}, capture_output=True,
                         text=True, timeout=300, cwd=tmp_path, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    resolved = json.loads(out.stdout.strip().splitlines()[-1])
    assert resolved == {"method": "forkserver", "preload": [WARM_MODULE], "celery_default": True}
