"""Shared fixtures: small real pipelines on real Delta tables in a temporary root."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pytest

from pipelines.spec import PipelineSpec, load_spec, parse_spec

REPO = Path(__file__).resolve().parent.parent

# In-process Airflow (DagBag, dag.test) reads its configuration once, at import: give the test
# session its own home and SQLite database before anything imports airflow, so no test ever
# touches a user's ~/airflow.
_AIRFLOW_HOME = tempfile.mkdtemp(prefix="lockstep-test-airflow-")
os.environ["AIRFLOW_HOME"] = _AIRFLOW_HOME
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_AIRFLOW_HOME}/airflow.db"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(Path(_AIRFLOW_HOME) / "dags")
(Path(_AIRFLOW_HOME) / "dags").mkdir()


def services_required() -> bool:
    return os.environ.get("LOCKSTEP_REQUIRE_SERVICES") == "1"


def small_spec_data(regions: int = 3, rows: int = 300, **overrides: Any) -> dict[str, Any]:
    """The flagship spec, shrunk: fewer regions and rows, same tables and transforms."""
    data = load_spec("fraud_features").model_dump(mode="json")
    data["regions"] = data["regions"][:regions]
    data["sources"]["transactions"]["rows_per_region"] = rows
    data["sources"]["transactions"]["merchants"] = 200
    data["sources"]["merchant_risk"]["merchants"] = 200
    # the flagship's suites, wherever a test writes the spec (a validated table's suite must exist)
    data["validation"]["suites_dir"] = str(REPO / "expectations")
    data.update(overrides)
    return data


def make_spec(regions: int = 3, rows: int = 300, **overrides: Any) -> PipelineSpec:
    spec = parse_spec(small_spec_data(regions, rows, **overrides), "test-spec")
    return spec.with_path(REPO / "dags" / "fraud_features.yaml")


@pytest.fixture
def root(tmp_path: Path) -> str:
    return str(tmp_path / "lake")


@pytest.fixture
def small_spec() -> PipelineSpec:
    return make_spec()
