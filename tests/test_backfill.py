"""Backfills through the core runner: resumable, and a second run changes nothing."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from typer.testing import CliRunner

from pipelines.backfill import plan_backfill, run_backfill
from pipelines.storage import LOCKSTEP_DIR, table_version
from tests.conftest import make_spec


def all_versions(root: str) -> dict[str, int | None]:
    tables = [p.parent for p in Path(root).rglob("_delta_log")]
    return {str(t): table_version(str(t)) for t in tables}


def test_backfill_resumes_and_repeats_as_a_no_op(root: str) -> None:
    spec = make_spec(regions=2)
    first = run_backfill(spec, date(2026, 1, 1), date(2026, 1, 2), root=root)
    assert [run is not None for _, run in first] == [True, True]
    # a longer backfill picks up where the first one stopped
    second = run_backfill(spec, date(2026, 1, 1), date(2026, 1, 4), root=root)
    assert [p.interval.key for p, run in second if run is not None] == ["2026-01-03", "2026-01-04"]
    assert all(run.decision.certified for _, run in second if run is not None)  # type: ignore[union-attr]
    before = all_versions(root)
    assert any(LOCKSTEP_DIR in t for t in before)
    plan = plan_backfill(spec, date(2026, 1, 1), date(2026, 1, 4), root=root)
    assert [p.status for p in plan] == ["done"] * 4
    third = run_backfill(spec, date(2026, 1, 1), date(2026, 1, 4), root=root)
    assert all(run is None for _, run in third)
    assert all_versions(root) == before, "a repeated backfill changes no table, bookkeeping included"


def test_changed_partition_is_run_again(root: str) -> None:
    spec = make_spec(regions=2)
    run_backfill(spec, date(2026, 1, 1), date(2026, 1, 2), root=root)
    from pipelines.runner import ingest
    from pipelines.spec import Interval

    ingest(spec, Interval.for_date("2026-01-01"), spec.regions[0], root=root, force=True)
    plan = plan_backfill(spec, date(2026, 1, 1), date(2026, 1, 2), root=root)
    assert [p.status for p in plan] == ["todo", "done"]
    assert "changed since certification" in plan[0].why


def test_cli_backfill_json(tmp_path: Path) -> None:
    from pipelines.cli import _register, app

    _register()
    spec_path = tmp_path / "p.yaml"
    import yaml

    from tests.conftest import small_spec_data

    spec_path.write_text(yaml.safe_dump(small_spec_data(regions=2, rows=200)))
    args = ["backfill", str(spec_path), "--start", "2026-01-01", "--end", "2026-01-02", "--root", str(tmp_path / "lake"), "--json"]
    runner = CliRunner()
    out = runner.invoke(app, args)
    assert out.exit_code == 0, out.output
    assert [r["action"] for r in json.loads(out.output)] == ["ran", "ran"]
    again = runner.invoke(app, args)
    assert [r["action"] for r in json.loads(again.output)] == ["skipped", "skipped"]
    bad = runner.invoke(app, [*args[:2], "--start", "2026-01-05", "--end", "2026-01-01"])
    assert bad.exit_code == 2 and "before --start" in bad.output
