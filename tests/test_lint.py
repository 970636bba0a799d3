"""The edges, enforced by tools: ruff (with the banned-import rule that keeps Airflow out of
the core), mypy over the package, and import-linter's layers contracts (pyproject.toml:
no module imports a layer above its own, so certify, runner and reconcile cannot grow back
into a cycle, nor suites and the GX engine inside pipelines.validation, nor the storage
package's writes and tables).

The full runs are ``make lint`` (ruff, mypy, lint-imports), which CI (``.ci/run``) runs
before ``make test``; here only what proves the contract is not a picture: an upward import
on a scratch copy of the package makes lint-imports fail, and every other contract holds."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

#: import-linter's command, installed beside this interpreter (the dev extra)
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
CONTRACTS = 5


def _lint_imports(project: Path) -> subprocess.CompletedProcess[str]:
    """import-linter over ``project``'s pipelines/ with its pyproject.toml (no cache)."""
    assert LINT_IMPORTS.exists(), f"{LINT_IMPORTS} is missing: pip install -e '.[dev]'"
    env = {**os.environ, "PYTHONPATH": str(project)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", str(project / "pyproject.toml")], cwd=project, env=env,
                          capture_output=True, text=True)


def test_layers_contract_fails_on_an_upward_import(tmp_path: Path) -> None:
    """The contract is not a picture: storage importing the runner breaks it."""
    shutil.copytree(REPO / "pipelines", tmp_path / "pipelines", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    with (tmp_path / "pipelines" / "storage" / "__init__.py").open("a") as f:
        f.write("\nimport pipelines.runner  # noqa: E402,F401\n")  # import-linter parses, never runs it
    out = _lint_imports(tmp_path)
    assert out.returncode != 0, out.stdout + out.stderr
    assert f"{CONTRACTS - 1} kept, 1 broken" in out.stdout, out.stdout
    assert "pipelines.storage -> pipelines.runner" in out.stdout, out.stdout


#: README's Layout: "No module in `pipelines/` is over 400 lines."
MAX_MODULE_LINES = 400


def test_no_module_in_the_package_is_over_400_lines() -> None:
    """The house keeps its rooms small: a module that grows past the bound is split (or README's
    Layout names it and says why, and this test with it)."""
    layout = (REPO / "README.md").read_text().split("## Layout", 1)[1].split("\n## ", 1)[0]
    assert f"No module in `pipelines/` is over {MAX_MODULE_LINES} lines." in layout
    over = {str(p.relative_to(REPO)): n for p in sorted((REPO / "pipelines").rglob("*.py"))
            if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert over == {}, f"over {MAX_MODULE_LINES} lines: {over}"
