"""File and Delta sources through the runner: formats, missing and corrupt inputs."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pytest

from pipelines.errors import SourceError
from pipelines.runner import ingest, run_interval
from pipelines.sources.synthetic import export_files
from pipelines.spec import FaultSpec, Interval, parse_spec
from pipelines.storage import read_table, table_uri, table_version
from tests.conftest import small_spec_data

D = date(2026, 1, 1)


def file_spec(landing: Path, fmt: str, regions: int = 2) -> object:
    data = small_spec_data(regions)
    data["sources"]["transactions"] = {"kind": fmt, "path": f"{landing}/{{region}}/{{ds}}.{fmt}"}
    data["validation"]["enabled"] = False
    return parse_spec(data, "files")


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_file_formats_land_the_same_rows(tmp_path: Path, fmt: str) -> None:
    spec = file_spec(tmp_path / "landing", fmt)
    export_files(tmp_path / "landing", regions=spec.regions, dates=[D], rows=200, fmt=fmt)
    result = run_interval(spec, Interval.for_date(D), root=str(tmp_path / "lake"))
    raw = read_table(table_uri(str(tmp_path / "lake"), spec.name, spec.regions[0], "raw", "transactions")).collect()
    assert raw.height == 200 and raw["txn_id"].n_unique() == 200
    assert raw["amount"].dtype == pl.Float64
    assert result.decision is not None and result.decision.certified


def test_corrupt_file_is_reported_and_nothing_is_lost(tmp_path: Path) -> None:
    landing, root = tmp_path / "landing", str(tmp_path / "lake")
    spec = file_spec(landing, "parquet")
    export_files(landing, regions=spec.regions, dates=[D], rows=200)
    run_interval(spec, Interval.for_date(D), root=root)
    bad_region = spec.regions[1]
    uri = table_uri(root, spec.name, bad_region, "raw", "transactions")
    version = table_version(uri)
    # the source re-delivers the day, and one region's file arrives corrupt
    export_files(landing, regions=spec.regions, dates=[D], rows=250,
                 faults=[FaultSpec(kind="corrupt_file", regions=[bad_region], dates=[D])])
    bad = landing / bad_region / f"{D}.parquet"
    with pytest.raises(SourceError) as exc:
        ingest(spec, Interval.for_date(D), bad_region, root=root)
    assert str(bad) in str(exc.value) and "left in place" in str(exc.value)
    assert bad.exists()
    assert table_version(uri) == version
    assert read_table(uri).collect().height == 200, "the last committed rows are intact"
    good = ingest(spec, Interval.for_date(D), spec.regions[0], root=root)
    assert good[0].rows == 250, "other regions go on"


def test_missing_file_names_path(tmp_path: Path) -> None:
    spec = file_spec(tmp_path / "landing", "csv")
    with pytest.raises(SourceError, match=r"landing/eu-west/2026-01-01.csv: expected input file is missing"):
        ingest(spec, Interval.for_date(D), "eu-west", root=str(tmp_path / "lake"))


def test_delta_source(tmp_path: Path) -> None:
    upstream = tmp_path / "upstream"
    for region in ("eu-west", "eu-central"):
        pl.DataFrame({"merchant_id": [1, 2], "mcc": [5411, 5812], "risk_score": [0.1, 0.9],
                      "risk_tier": ["low", "high"], "ds": [D.isoformat()] * 2}).write_delta(str(upstream / region))
    data = small_spec_data(2)
    data["sources"]["merchant_risk"] = {"kind": "delta", "uri": f"{upstream}/{{region}}"}
    data["validation"]["enabled"] = False
    spec = parse_spec(data, "delta-src")
    refs = ingest(spec, Interval.for_date(D), "eu-west", root=str(tmp_path / "lake"))
    assert [r.rows for r in refs] == [300, 2]
