"""The synthetic multi-region source: deterministic, realistic in shape, and each fault."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pytest

from pipelines.errors import SourceError
from pipelines.sources import synthetic
from pipelines.spec import FaultSpec

REGIONS = ["eu-west", "us-east", "ap-south", "sa-east"]
D = date(2026, 1, 3)


def tx(region: str = "eu-west", rows: int = 5_000, faults: list[FaultSpec] | None = None, ds: date = D) -> pl.DataFrame:
    return synthetic.transactions(region, ds, regions=REGIONS, rows=rows, merchants=500, faults=faults)


def fault(kind: str, **kw: object) -> list[FaultSpec]:
    return [FaultSpec(kind=kind, regions=["eu-west"], dates=[D], **kw)]  # type: ignore[arg-type]


def test_deterministic_and_region_specific() -> None:
    assert tx().equals(tx())
    assert not tx().equals(tx("us-east"))
    assert not tx().equals(tx(ds=date(2026, 1, 4)))


def test_realistic_shape() -> None:
    df = tx(rows=50_000)
    assert df["txn_id"].n_unique() == df.height
    assert df["event_time"].dt.date().unique().to_list() == [D]
    travel = (df["card_region"] != "eu-west").mean()
    assert 0.02 < travel < 0.04, "about 3% of transactions come from travelling cards"
    assert 0.0005 < df["is_fraud"].mean() < 0.01
    top = df["merchant_id"].value_counts().sort("count", descending=True)["count"]
    assert top.head(25).sum() > 0.3 * df.height, "merchant popularity is skewed"
    log_amount = df["amount"].log()
    assert 3.0 < log_amount.mean() < 3.8 and abs(log_amount.skew()) < 0.3, "amounts are log-normal"


def test_fault_drift_shifts_amounts() -> None:
    base, drifted = tx()["amount"].log().mean(), tx(faults=fault("drift", magnitude=1.0))["amount"].log().mean()
    assert drifted - base == pytest.approx(synthetic.LOG_AMOUNT_SIGMA, abs=1e-4)  # amounts are rounded to cents
    assert tx("us-east", faults=fault("drift")).equals(tx("us-east")), "other regions are untouched"


def test_fault_missing_partition() -> None:
    df = tx(faults=fault("missing_partition"))
    assert df.height == 0 and df.schema == tx().schema


def test_fault_duplicates() -> None:
    df = tx(faults=fault("duplicates"))
    assert df.height == 5_050 and df["txn_id"].n_unique() == 5_000


def test_fault_schema_change() -> None:
    df = tx(faults=fault("schema_change"))
    assert "mcc" not in df.columns and df.schema["merchant_category"] == pl.String


def test_fault_stale_reference() -> None:
    fresh = synthetic.merchant_risk(D, merchants=2000, region="eu-west")
    stale = synthetic.merchant_risk(D, merchants=2000, region="eu-west", faults=fault("stale_reference"))
    other = synthetic.merchant_risk(D, merchants=2000, region="us-east", faults=fault("stale_reference"))
    yesterday = synthetic.merchant_risk(date(2026, 1, 2), merchants=2000)
    assert other.equals(fresh), "regions without the fault hold the same list"
    assert stale.drop("ds").equals(yesterday.drop("ds")), "the stale region holds yesterday's list"
    changed = (fresh["risk_score"] != stale["risk_score"]).sum()
    assert 5 <= changed <= 100, "a day's updates touch a few percent of merchants"


def test_fault_corrupt_file(tmp_path: Path) -> None:
    from pipelines.sources import _read_file

    paths = synthetic.export_files(tmp_path, regions=REGIONS[:2], dates=[D], rows=100,
                                   faults=[FaultSpec(kind="corrupt_file", regions=["us-east"], dates=[D])])
    good, bad = sorted(paths, key=lambda p: p.parts[-2])
    assert _read_file("parquet", good).height == 100
    before = bad.read_bytes()
    with pytest.raises(SourceError, match=str(bad)):
        _read_file("parquet", bad)
    assert bad.read_bytes() == before, "the corrupt file is left in place"
