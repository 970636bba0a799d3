"""The wheel, installed as a team would: init, a certified run, a blocked run with explain,
and dag.test() of the team's DAG and its consumer, all outside this repository.

The fresh venv has no access to the repo: the wheel is installed with ``--no-deps`` and the
dependencies come from the project venv's site-packages through a ``.pth`` line (a path
entry only: the editable install's finder there is not activated), so the test is honest
about the package (templates, specs, suites, code all from the wheel). Building the wheel
fetches the build backend (setuptools, wheel) into pip's isolated build env: that is the
only network access.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

DAG_TEST = r"""
import os, sys
from datetime import UTC, datetime
from pathlib import Path
project = Path(sys.argv[1])
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(project / "dags")
import subprocess
subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(str(project / "dags"))
assert bag.import_errors == {}, bag.import_errors
run = bag.dags["payments"].test(logical_date=datetime(2026, 1, 7, tzinfo=UTC))  # processes 2026-01-06
print("pipeline", run.state)
run = bag.dags["payments_scoring"].test(logical_date=datetime(2026, 1, 8, 12, tzinfo=UTC))
print("consumer", run.state)
import pipelines
print("package", pipelines.__file__)
from importlib.metadata import distribution
print("entry points", sorted(e.value for e in distribution("lockstep").entry_points if e.group == "airflow.plugins"))
from airflow import plugins_manager
print("plugins", sorted(p["name"] for p in plugins_manager.get_plugin_info()))
"""


def sh(*args: str | Path, cwd: Path, env: dict[str, str], ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode in ok, f"{args}: exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.mark.slow
def test_wheel_in_a_fresh_venv(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "LOCKSTEP", "PYTHON"))}
    env["AIRFLOW_HOME"] = str(tmp_path / "airflow")
    env["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    wheels = tmp_path / "wheels"
    sh(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", wheels, REPO,
       cwd=tmp_path, env=env)
    wheel = next(wheels.glob("lockstep-*.whl"))
    venv = tmp_path / "venv"
    sh(sys.executable, "-m", "venv", venv, cwd=tmp_path, env=env)
    py, bin_ = venv / "bin" / "python", venv / "bin"
    site = Path(sh(py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp_path, env=env).stdout.strip())
    (site / "lockstep_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    sh(py, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel, cwd=tmp_path, env=env)
    where = sh(py, "-c", "import pipelines; print(pipelines.__file__)", cwd=tmp_path, env=env).stdout
    assert where.startswith(str(site)), f"pipelines imported from {where}, not from the wheel"

    # a shipped pipeline by name, from the installed package
    assert "fraud_features" in sh(bin_ / "lockstep", "templates", cwd=tmp_path, env=env).stdout
    status = sh(bin_ / "lockstep", "status", "fraud_features", cwd=tmp_path, env=env, ok=(0, 2))
    # the spec loads from the package; its data would go under the working directory
    assert str(tmp_path / "lockstep-data") in status.stdout + status.stderr

    # init + a certified run
    sh(bin_ / "lockstep", "init", "team", "--template", "card_spend", "--name", "payments",
       "--regions", "eu-west,us-east", cwd=tmp_path, env=env)
    project = tmp_path / "team"
    out = sh(bin_ / "lockstep", "run", "team/payments.yaml", "--date", "2026-01-07", "--json", cwd=tmp_path, env=env)
    assert json.loads(out.stdout)["decision"]["status"] == "certified"

    # a blocked run: one region's delivery with every amount negative is quarantined over the cap
    landing = project / "landing" / "us-east" / "2026-01-05.parquet"
    sh(py, "-c", f"import polars as pl; p={str(landing)!r}; pl.read_parquet(p).with_columns(amount=-pl.col('amount')).write_parquet(p)",
       cwd=tmp_path, env=env)
    out = sh(bin_ / "lockstep", "run", "team/payments.yaml", "--date", "2026-01-05", "--json", cwd=tmp_path, env=env, ok=(0, 1))
    assert json.loads(out.stdout)["decision"]["status"] == "blocked"
    why = sh(bin_ / "lockstep", "explain", "team/payments.yaml", "--date", "2026-01-05", cwd=tmp_path, env=env, ok=(0, 1))
    assert "us-east" in why.stdout and "quarantine" in why.stdout.lower(), why.stdout

    # the team's DAG and its consumer through dag.test(), from the project's own dags folder
    out = sh(py, "-c", DAG_TEST, project, cwd=tmp_path, env=env)
    assert "pipeline success" in out.stdout and "consumer success" in out.stdout, out.stdout + out.stderr
    assert f"package {site}" in out.stdout
    # the wheel registers the view with any Airflow it is installed into (no plugins folder here)
    assert "entry points ['pipelines.airflow.plugin:LockstepPlugin']" in out.stdout, out.stdout
    assert "'lockstep'" in out.stdout.split("plugins ", 1)[1], out.stdout
