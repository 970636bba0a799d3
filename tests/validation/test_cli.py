"""``lockstep validate`` on real tables: per-region summary, Data Docs path, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from tests.conftest import REPO, small_spec_data


def test_validate_command(tmp_path: Path) -> None:
    from pipelines.cli import _register, app

    _register()
    data = small_spec_data(regions=2, rows=500)
    data["sources"]["transactions"]["faults"] = [{"kind": "drift", "regions": ["eu-central"], "dates": ["2026-01-01"],
                                                  "magnitude": 1.5}]
    data["validation"]["suites_dir"] = str(REPO / "expectations")
    spec = tmp_path / "p.yaml"
    spec.write_text(yaml.safe_dump(data))
    root = str(tmp_path / "lake")
    runner = CliRunner()
    assert runner.invoke(app, ["run", str(spec), "--date", "2026-01-01", "--root", root, "--no-gate"]).exit_code == 0
    out = runner.invoke(app, ["validate", str(spec), "--date", "2026-01-01", "--root", root, "--json"])
    assert out.exit_code == 1, out.output
    summary = json.loads(out.output)
    assert summary["regions"]["eu-west"]["blocking"] == []
    assert "transactions.column_median_to_be_between[amount]#12" in summary["regions"]["eu-central"]["blocking"]
    assert Path(summary["data_docs"]).exists()
    clean = runner.invoke(app, ["validate", str(spec), "--date", "2026-01-01", "--root", root, "--region", "eu-west"])
    assert clean.exit_code == 0 and "Data Docs" in clean.output
