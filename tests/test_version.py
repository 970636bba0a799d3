"""One code version: the installed distribution's, defined in pipelines.version and imported
everywhere else (it goes into write fingerprints and gate decisions)."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version

import pipelines
from pipelines.control import decisions
from pipelines.runner import steps
from pipelines.version import CODE_VERSION, DISTRIBUTION
from tests.conftest import REPO


def test_code_version_is_the_installed_distributions() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert DISTRIBUTION == project["name"]
    assert CODE_VERSION == version(DISTRIBUTION) == project["version"]
    assert pipelines.__version__ == CODE_VERSION
    # what write fingerprints (runner steps) and decisions (the decision log) record
    assert steps.CODE_VERSION == decisions.CODE_VERSION == CODE_VERSION


def test_the_version_is_defined_once() -> None:
    defined = re.compile(r"^(CODE_VERSION|__version__)\b[^=\n]*=", re.MULTILINE)
    where = sorted(str(p.relative_to(REPO)) for p in (REPO / "pipelines").rglob("*.py") if defined.search(p.read_text()))
    assert where == ["pipelines/version.py"]
