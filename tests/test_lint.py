"""The edges, enforced by tools: ruff (with the banned-import rule that keeps Airflow out of
the core) and mypy over the package."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def test_ruff() -> None:
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "pipelines", "tests", "dags", "plugins"],
                         cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_mypy() -> None:
    out = subprocess.run([sys.executable, "-m", "mypy", "pipelines"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
