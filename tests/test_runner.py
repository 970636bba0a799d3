"""The runner end to end on real Delta tables: idempotent re-runs, payloads, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from pipelines.certify import read_certified
from pipelines.errors import SpecError
from pipelines.runner import StepPayload, run_interval, run_step
from pipelines.spec import Interval
from pipelines.status import pipeline_status
from pipelines.storage import read_table, table_uri
from tests.conftest import make_spec


def contents(spec, root: str) -> dict[str, pl.DataFrame]:  # type: ignore[no-untyped-def]
    out = {}
    for region in spec.regions:
        for t in spec.tables:
            uri = table_uri(root, spec.name, region, t.layer, t.name)
            out[f"{region}/{t.path}"] = read_table(uri).collect().sort(pl.all())
    return out


def test_rerun_changes_nothing(root: str, caplog: pytest.LogCaptureFixture) -> None:
    spec = make_spec()
    day = Interval.for_date("2026-01-01")
    with caplog.at_level("INFO", logger="pipelines"):
        first = run_interval(spec, day, root=root)
    landed = [r.getMessage() for r in caplog.records if r.name.startswith("pipelines.runner")]
    assert any(" landed as v" in m for m in landed), landed
    caplog.clear()
    before = contents(spec, root)
    with caplog.at_level("INFO", logger="pipelines"):
        second = run_interval(spec, day, root=root)
    assert all(ref.skipped for r in second.regions for ref in r.tables)
    # every skip is one line in the task's log: which table, which interval, the version kept
    skips = [r.getMessage() for r in caplog.records if r.name.startswith("pipelines.runner") and "unchanged" in r.getMessage()]
    assert len(skips) == sum(len(r.tables) for r in second.regions), skips
    assert all("2026-01-01" in m and "kept v" in m for m in skips), skips
    after = contents(spec, root)
    assert before.keys() == after.keys()
    for key in before:
        assert before[key].equals(after[key]), key
    assert first.decision and second.decision
    assert first.decision.generation_id == second.decision.generation_id


def test_forced_rerun_neither_duplicates_nor_drops(root: str) -> None:
    spec = make_spec(regions=2)
    day = Interval.for_date("2026-01-01")
    run_interval(spec, day, root=root)
    before = contents(spec, root)
    run_interval(spec, day, root=root, force=True)
    after = contents(spec, root)
    for key in before:
        assert before[key].equals(after[key]), key


def test_history_feeds_later_days(root: str) -> None:
    spec = make_spec(regions=1)
    for ds in ("2026-01-01", "2026-01-02"):
        run_interval(spec, Interval.for_date(ds), root=root)
    feats = read_certified(spec, "card_features", spec.regions[0], root=root).collect()
    assert set(feats["ds"]) == {"2026-01-02"}
    assert feats["txn_count_7d"].sum() > 0, "day two sees day one's history"
    assert not feats["first_seen_in_region"].all()


def test_step_payloads_return_references_only(root: str) -> None:
    spec_path = str(Path(__file__).resolve().parent.parent / "dags" / "fraud_features.yaml")
    iv = Interval.for_date("2026-01-01")
    payload = StepPayload(spec=spec_path, step="ingest", interval_start=iv.start, interval_end=iv.end,
                          region="eu-west", root=root)
    out = run_step(payload)
    json.dumps(out)  # JSON-able: fit for XCom under any executor
    assert [t["rows"] for t in out["tables"]] == [20_000, 2_000]
    assert out["tables"][0]["uri"].endswith("fraud_features/eu-west/raw/transactions")


@pytest.mark.parametrize("step", ["ingest", "validate_inputs", "transform", "validate", "region"])
def test_region_step_without_a_region_fails_without_retry(root: str, step: str) -> None:
    spec_path = str(Path(__file__).resolve().parent.parent / "dags" / "fraud_features.yaml")
    iv = Interval.for_date("2026-01-01")
    payload = StepPayload(spec=spec_path, step=step, interval_start=iv.start, interval_end=iv.end, root=root)
    with pytest.raises(SpecError, match=f"step {step} needs a region") as info:
        run_step(payload)
    assert not info.value.retryable, "a malformed payload fails the Airflow task at once"
    assert not Path(root).exists(), "refused before touching storage"


def test_status(root: str) -> None:
    spec = make_spec(regions=2)
    run_interval(spec, Interval.for_date("2026-01-01"), root=root)
    st = pipeline_status(spec, root=root)
    rows = {(r["region"], r["table"]): r for r in st["tables"]}
    assert rows[(spec.regions[0], "raw/transactions")]["latest_rows"] == 300
    assert rows[(spec.regions[1], "features/merchant_features")]["latest_interval"] == "2026-01-01"
    assert st["certified"]["interval"] == "2026-01-01"


def test_cli_demo_and_status(tmp_path: Path) -> None:
    from pipelines.cli import _register, app

    _register()
    root = str(tmp_path / "lake")
    runner = CliRunner()
    result = runner.invoke(app, ["demo", "--root", root, "--days", "2", "--rows", "300", "--json"])
    assert result.exit_code == 0, result.output
    steps = json.loads(result.output)
    assert steps[0]["decision"]["status"] == "certified"
    assert len(steps[0]["regions"]) == 12
    status = runner.invoke(app, ["status", "fraud_features", "--root", root, "--json"])
    assert status.exit_code == 0, status.output
    st = json.loads(status.output)
    assert {r["region"] for r in st["tables"]} == set(steps[0]["regions"])
    again = runner.invoke(app, ["demo", "--root", root, "--days", "2", "--rows", "300", "--json"])
    st2 = json.loads(runner.invoke(app, ["status", "fraud_features", "--root", root, "--json"]).output)
    assert again.exit_code == 0
    shown = runner.invoke(app, ["demo", "--root", root, "--days", "2", "--rows", "300"], terminal_width=200)
    assert shown.exit_code == 0 and "no model released: it trains on 3 certified day(s)" in shown.output
    rows = lambda s: {(r["region"], r["table"]): r["rows"] for r in s["tables"]}  # noqa: E731
    assert rows(st) == rows(st2), "running the demo again changes no row counts"
