"""Rows whose event time lies outside the interval they were delivered in, through `lockstep run`.

A region's clock a few seconds ahead, or a row late from the day before, is the region's
delivery of that day: it gets its feature row there (windows on its event time), so the
raw -> features control totals hold and the interval certifies. A row further out than the
table's tolerance is quarantined with the reason "event time outside the delivery interval",
counted (source = raw + quarantine), and `explain` names it.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from pipelines.certify import read_certified
from pipelines.sources.synthetic import export_files
from pipelines.spec import Interval, load_spec
from pipelines.storage import read_table, table_uri
from tests.conftest import REPO, small_spec_data

DAY1, DAY2 = "2026-01-01", "2026-01-02"
#: (row of eu-west's DAY2 file, shift of its event time from the interval's edge)
SECONDS_AHEAD = {0: timedelta(seconds=3), 1: timedelta(seconds=59)}  # after the day's end
SECONDS_LATE = {2: timedelta(seconds=-2)}  # before the day's start: late from DAY1
HOURS_LATE = {3: timedelta(hours=-3), 4: timedelta(hours=-5)}  # late by hours


def cli(*args: str) -> Any:
    from pipelines.cli import _register, app

    _register()
    return CliRunner().invoke(app, list(args))


def skew(path: Path, day: Interval) -> dict[str, Any]:
    """Move some rows' event times outside ``day``; the txn ids moved, by kind."""
    df = pl.read_parquet(path)
    et = df["event_time"].to_list()
    moved: dict[str, list[str]] = {"seconds": [], "hours": []}
    for row, shift in SECONDS_AHEAD.items():
        et[row] = day.end + shift
        moved["seconds"].append(df["txn_id"][row])
    for row, shift in {**SECONDS_LATE, **HOURS_LATE}.items():
        et[row] = day.start + shift
        moved["seconds" if row in SECONDS_LATE else "hours"].append(df["txn_id"][row])
    df.with_columns(pl.Series("event_time", et, dtype=df.schema["event_time"])).write_parquet(path)
    return moved


@pytest.fixture
def lake(tmp_path: Path) -> dict[str, Any]:
    landing = tmp_path / "landing"
    data = small_spec_data(regions=2, rows=400)
    data["sources"]["transactions"] = {"kind": "parquet", "path": str(landing / "{region}" / "{ds}.parquet")}
    data["storage"]["root"] = str(tmp_path / "lake")
    data["validation"]["suites_dir"] = str(REPO / "expectations")
    export_files(landing, regions=data["regions"], dates=[date(2026, 1, 1), date(2026, 1, 2)], rows=400,
                 merchants=200)
    spec_path = tmp_path / "skew.yaml"
    spec_path.write_text(yaml.safe_dump(data, sort_keys=False))
    first = cli("run", str(spec_path), "--date", DAY1, "--json")
    assert first.exit_code == 0, first.output
    moved = skew(landing / "eu-west" / f"{DAY2}.parquet", Interval.for_date(DAY2))
    return {"spec": spec_path, "data": data, "moved": moved, "tmp": tmp_path}


def run_day2(spec_path: Path) -> dict[str, Any]:
    out = cli("run", str(spec_path), "--date", DAY2, "--json")
    assert out.exception is None or isinstance(out.exception, SystemExit), repr(out.exception)
    return {"code": out.exit_code, "doc": json.loads(out.stdout), "output": out.output}


def test_skewed_rows_are_featured_and_rows_late_by_hours_quarantined_with_their_reason(lake: dict[str, Any]) -> None:
    result = run_day2(lake["spec"])
    assert result["code"] == 0, result["output"]
    spec = load_spec(lake["spec"])
    root = spec.root()
    feats = read_certified(spec, "card_features", "eu-west", at=DAY2).collect()
    got = set(feats["txn_id"])
    assert set(lake["moved"]["seconds"]) <= got, "a row skewed by seconds is featured in its delivery interval"
    assert not set(lake["moved"]["hours"]) & got
    assert feats.height == 400 - len(lake["moved"]["hours"])
    assert set(feats["ds"]) == {DAY2}

    # the rows late by hours: in the raw table's quarantine, with the reason, counted
    q = read_table(table_uri(root, spec.name, "eu-west", "quarantine", "transactions")).collect()
    q2 = q.filter(pl.col("ds") == DAY2)
    assert sorted(q2["txn_id"]) == sorted(lake["moved"]["hours"])
    assert set(q2["_reason"]) == {"event time outside the delivery interval"}
    assert set(q2["_check_ids"]) == {"event_time_in_interval"}

    # explain names the check, the reason, and how many rows
    out = cli("explain", str(lake["spec"]), "--date", DAY2)
    assert out.exit_code == 0, out.output
    assert "event time outside the delivery interval" in out.output, out.output
    assert "2 of 400 row(s)" in out.output, out.output

    # the control totals held: source = raw + quarantine, raw = features + quarantine
    failed = json.loads(cli("explain", str(lake["spec"]), "--date", DAY2, "--json").stdout)["failed"]
    assert not [f for f in failed if f["check_type"] == "control_totals"], failed
    late = [f for f in failed if f["check_id"] == "transactions.event_time_in_interval"]
    assert len(late) == 1 and late[0]["region"] == "eu-west" and not late[0]["blocking"], late
    assert late[0]["details"]["reason"] == "event time outside the delivery interval"


def test_a_wider_tolerance_features_rows_late_by_hours(lake: dict[str, Any]) -> None:
    data = json.loads(json.dumps(lake["data"]))
    raw = next(t for t in data["tables"] if t["name"] == "transactions")
    raw["event_time_tolerance"] = "6h"
    lake["spec"].write_text(yaml.safe_dump(data, sort_keys=False))
    result = run_day2(lake["spec"])
    assert result["code"] == 0, result["output"]
    spec = load_spec(lake["spec"])
    feats = read_certified(spec, "card_features", "eu-west", at=DAY2).collect()
    assert feats.height == 400
    assert set(lake["moved"]["hours"]) <= set(feats["txn_id"])
    # each featured late row's windows are computed on its own event time: nothing at or after it counts
    late = feats.filter(pl.col("txn_id").is_in(lake["moved"]["hours"]))
    assert (late["event_time"] < Interval.for_date(DAY2).start).all()
