"""The edges, enforced by tools: ruff (with the banned-import rule that keeps Airflow out of
the core), mypy over the package, and import-linter's layers contract (pyproject.toml:
no module imports a layer above its own, so certify, runner and reconcile cannot grow back
into a cycle)."""

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


def test_layers_contract() -> None:
    lint = REPO / ".venv" / "bin" / "lint-imports"
    cmd = [str(lint)] if lint.exists() else [sys.executable, "-m", "importlinter.cli"]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 kept, 0 broken" in out.stdout, out.stdout
