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
from pipelines.spec import Interval, parse_spec
from pipelines.status import pipeline_status
from pipelines.storage import read_table, table_uri
from tests.conftest import make_spec, small_spec_data


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


def test_a_rerun_that_changes_nothing_records_nothing_until_a_suite_changes(tmp_path: Path) -> None:
    """Re-running an unchanged interval costs its fingerprints: no validation, no check result,
    no decision (the history holds decisions, not re-runs). A changed suite is a change: the
    next run validates under it and decides again."""
    import shutil

    from deltalake import DeltaTable

    from pipelines.certify import decisions
    from pipelines.control.tables import CHECK_RESULTS_TABLE
    from tests.conftest import REPO

    suites = tmp_path / "expectations"
    shutil.copytree(REPO / "expectations", suites)
    data = small_spec_data(regions=2, rows=200)
    data["validation"]["suites_dir"] = str(suites)
    spec = parse_spec(data, "test-spec").with_path(REPO / "dags" / "fraud_features.yaml")
    root, day = str(tmp_path / "lake"), Interval.for_date("2026-01-01")
    first = run_interval(spec, day, root=root)
    assert first.decision is not None and first.decision.certified and not first.unchanged
    results = spec.lockstep_uri(CHECK_RESULTS_TABLE.name, root)
    log, checked = len(decisions(spec, root=root)), DeltaTable(results).version()

    again = run_interval(spec, day, root=root)
    assert again.unchanged and all(not r.checks for r in again.regions)
    assert again.decision is not None and again.decision.decision_id == first.decision.decision_id
    assert len(decisions(spec, root=root)) == log and DeltaTable(results).version() == checked
    assert again.summary()["unchanged"] is True

    path = suites / "card_features.json"  # one more expectation: same data, another suite
    suite = json.loads(path.read_text())
    suite["expectations"].append({"type": "expect_column_to_exist", "kwargs": {"column": "card_id"}, "meta": {}})
    path.write_text(json.dumps(suite))
    third = run_interval(spec, day, root=root)
    assert not third.unchanged and third.decision is not None and third.decision.certified
    assert len(decisions(spec, root=root)) == log + 1 and DeltaTable(results).version() > checked
    assert third.decision.bindings["suites"]["card_features"] != first.decision.bindings["suites"]["card_features"]
    assert run_interval(spec, day, root=root).unchanged


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


def test_cli_progress_names_region_and_step_in_plain_lines_when_piped(tmp_path: Path) -> None:
    """Not on a terminal (a log, CI, a pipe), `lockstep run` says which region and step it is
    at, one plain line each, then its table; with --json stdout is the JSON document alone."""
    import yaml

    from pipelines.cli import _register, app

    _register()
    data = small_spec_data(regions=2, rows=200)
    spec_path = tmp_path / "p.yaml"
    spec_path.write_text(yaml.safe_dump(data))
    args = ["run", str(spec_path), "--date", "2026-01-01", "--root", str(tmp_path / "lake")]
    res = CliRunner().invoke(app, args, terminal_width=200)
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    for region in data["regions"]:
        for step in ("ingest", "validate inputs", "transform", "validate features"):
            assert f"fraud_features 2026-01-01: {region}: {step} …" in lines, (region, step, lines[:12])
    assert "fraud_features 2026-01-01: all regions: gate …" in lines
    assert any(line.startswith("fraud_features 2026-01-01: 2/2 done") for line in lines)
    assert not any("\x1b[" in line for line in lines)  # plain: no terminal control sequences
    again = CliRunner().invoke(app, [*args, "--json"])
    assert again.exit_code == 0 and json.loads(again.stdout)["unchanged"] is True
