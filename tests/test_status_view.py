"""``lockstep status``: a region x interval matrix that fits 80 columns; ``--json`` unchanged."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from typer.testing import CliRunner

from pipelines.cli.status_view import SYMBOLS, render_status

REGIONS = ["eu-west", "eu-central", "eu-north", "us-east", "us-west", "us-central", "ap-south", "ap-southeast",
           "ap-northeast", "sa-east", "af-south", "me-central"]


def test_twelve_regions_by_seven_intervals_fit_80_columns() -> None:
    intervals = [f"2026-01-{d:02d}" for d in range(1, 8)]
    states = list(SYMBOLS)
    cells = {k: {r: {"state": states[(i + j) % len(states)]} for j, r in enumerate(REGIONS)}
             for i, k in enumerate(intervals)}
    m = {"pipeline": "fraud_features", "regions": REGIONS, "intervals": intervals, "cells": cells}
    st = {
        "root": "/very/long/storage/root/" + "x" * 80,
        "tables": [{"region": r, "table": "raw/transactions", "latest_rows": 20_000} for r in REGIONS],
        "certified": {"generation_id": "2026-01-07.0123456789", "kind": "gate", "who": "airflow:admin",
                      "decided_at": datetime(2026, 1, 8, tzinfo=UTC), "interval": "2026-01-07"},
        "blocked": [{"interval": "2026-01-03", "reasons": ["drift.amount us-west/raw/transactions: " + "PSI " * 40,
                                                          "freshness"]}],
        "overrides_in_force": [{"interval": "2026-01-04", "who": "ops", "reason": "known promo " * 10}],
    }
    console = Console(width=80, record=True, color_system=None)
    render_status(console, st, m)
    text = console.export_text()
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80, text
    assert all(region in text for region in REGIONS)
    assert "01-01" in text and "01-07" in text and "20,000" in text
    assert any(line.startswith("blocked 2026-01-03: drift.amount") and line.endswith("(+1 more)") for line in lines)
    header = next(line for line in lines if "01-01" in line)
    assert "region" in header and len(header) <= 80


def test_cli_status_prints_the_matrix_and_json_unchanged(tmp_path: Path) -> None:
    from pipelines.cli import _register, app
    from pipelines.status import pipeline_status
    from tests.airflow.test_ui import build_lake

    _register()
    spec = build_lake(tmp_path, "status_demo")
    runner = CliRunner()
    out = runner.invoke(app, ["status", str(spec.path)], env={"COLUMNS": "80"})
    assert out.exit_code == 0, out.output
    assert "certification by region and interval" in out.output
    assert "blocked 2026-01-02 (at fault: eu-central): parity.merchant_risk" in out.output
    # the table and the reasons fit the terminal; a suggested command is never cut (it would not run)
    assert max(len(line) for line in out.output.splitlines() if not line.startswith("why: ")) <= 80
    assert f"why: lockstep explain {spec.path} --date 2026-01-02" in out.output
    js = runner.invoke(app, ["status", str(spec.path), "--json"])
    assert js.exit_code == 0, js.output
    assert json.loads(js.output) == json.loads(json.dumps(pipeline_status(spec), default=str))
