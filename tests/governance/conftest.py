"""A governed pipeline on a real lake: the 1st certified, the 2nd blocked by one region's stale
reference list; each test gets its own copy of the lake (built once per module)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from pipelines.control.evidence import publish_write
from pipelines.governance import Principal
from pipelines.runner import certify, run_interval
from pipelines.spec import Interval, PipelineSpec, parse_spec
from pipelines.storage import table_uri, write_interval
from tests.conftest import REPO, small_spec_data

D1, D2 = Interval.for_date("2026-01-01"), Interval.for_date("2026-01-02")
#: eu-west, eu-central, eu-north; eu-central's reference list goes stale on the 2nd
STALE = "eu-central"
ALL_ACTIONS = ["read", "run", "certify", "override", "rollback", "release", "approve"]
OPERATOR = ["read", "run", "override", "rollback", "approve"]


def governance(**overrides: Any) -> dict[str, Any]:
    roles = {"Admin": {"regions": "*", "actions": ALL_ACTIONS},
             **{f"{r}-operator": {"regions": [r], "actions": OPERATOR} for r in ("eu-west", "eu-central", "eu-north")}}
    return {"roles": roles, "approvals": 2, "approval_expiry": "1h", "allow_local": True, **overrides}


def governed_spec(**overrides: Any) -> PipelineSpec:
    data = small_spec_data(regions=3, rows=200, governance=governance(**overrides))
    return parse_spec(data, "governed-spec").with_path(REPO / "dags" / "fraud_features.yaml")


def stale(spec: PipelineSpec, root: str, region: str, interval: Interval, tag: str = "stale") -> None:
    """Make one region's reference table differ (as a stale delivery would): a new version."""
    uri = table_uri(root, spec.name, region, "reference", "merchant_risk")
    df = pl.read_delta(uri).filter(pl.col("ds") == interval.ds)
    bump = 0.999 if tag == "stale" else 0.998
    df = df.with_columns(risk_score=pl.when(pl.col("merchant_id") < 3).then(bump).otherwise(pl.col("risk_score")))
    ref = write_interval(uri, df, partition={"ds": interval.ds}, app_id=tag)
    publish_write(spec, region, spec.table("merchant_risk"), "reference", interval, df, ref, root=root)


def op(name: str, region: str = STALE) -> Principal:
    """A user Airflow verified, holding the operator role of ``region``."""
    return Principal(name, "airflow", frozenset({f"{region}-operator"}))


ADMIN = Principal("root-admin", "airflow", frozenset({"Admin"}))


@pytest.fixture(scope="module")
def built_lake(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = str(tmp_path_factory.mktemp("governed") / "lake")
    spec = governed_spec()
    run_interval(spec, D1, root=root)
    run_interval(spec, D2, root=root, certify=False)
    stale(spec, root, STALE, D2)
    assert not certify(spec, D2, root=root).certified
    return root


@pytest.fixture
def lake(built_lake: str, tmp_path: Path) -> str:
    """A copy of the module's lake for one test (its decisions and approvals its own)."""
    root = tmp_path / "lake"
    shutil.copytree(built_lake, root)
    return str(root)
