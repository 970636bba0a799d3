"""The suite in parallel (``make test``: pytest-xdist, ``-n 2``), on a scratch suite that uses
tests/conftest.py: tests sharing a module-scoped fixture run on one worker, so it is built
once; the others spread over both workers; what a worker puts in ``TIMINGS`` reaches the
controller's report."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

SCRATCH = '''
import os
from pathlib import Path

import pytest

from tests.conftest import TIMINGS


@pytest.fixture(scope="module")
def built():
    (Path(os.environ["PROBE_DIR"]) / f"built-{os.getpid()}").write_text("")


@pytest.mark.parametrize("i", range(6))
def test_shared(built, i):
    pass


@pytest.mark.parametrize("i", range(6))
def test_alone(i):
    TIMINGS["probe measured on a worker"] = 1.5
'''


def test_a_module_fixture_is_built_once_and_the_report_reaches_the_controller(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    (suite / "tests").mkdir(parents=True)
    (suite / "tests" / "__init__.py").write_text("")
    shutil.copy(REPO / "tests" / "conftest.py", suite / "tests" / "conftest.py")
    (suite / "tests" / "test_scratch.py").write_text(SCRATCH)
    probes = tmp_path / "probes"
    probes.mkdir()
    env = {**os.environ, "PROBE_DIR": str(probes), "PYTHONPATH": os.pathsep.join([str(suite), str(REPO)])}
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "2", "--dist", "loadgroup",
         "--no-loadscope-reorder", "-v", "tests"], cwd=suite, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "12 passed" in out.stdout, out.stdout[-3000:]
    assert len(list(probes.glob("built-*"))) == 1, out.stdout[-3000:]  # one worker built it, once
    shared = [line for line in out.stdout.splitlines() if "PASSED" in line and "test_shared" in line]
    assert len(shared) == 6 and len({line.split()[0] for line in shared}) == 1, shared
    assert all("@module:tests/test_scratch.py" in line for line in shared), shared
    assert "embedded Airflow timings" in out.stdout and "probe measured on a worker" in out.stdout, out.stdout[-3000:]
