"""The pipeline DAG through Airflow's own ``dag.test()``: same runner, real Delta, real DB.

``dag.test`` runs a DAG run in-process against the metadata database, task by task, with
the real task runner (XCom, outlets, asset events), so these tests hold the DAG factory to
the same results as the in-process runner.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml
from polars.testing import assert_frame_equal

from pipelines.certify import current_certified, decisions
from pipelines.runner import run_interval
from pipelines.spec import Interval, load_spec
from pipelines.storage import read_table, table_uri
from tests.conftest import small_spec_data


@pytest.fixture(scope="module")
def airflow_db() -> None:
    """Migrate the test session's SQLite metadata database (once per module)."""
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)


def write_spec(tmp_path: Path, faults: list[dict[str, Any]] | None = None, name: str = "af_fraud") -> Path:
    data = small_spec_data(regions=12, rows=300, name=name)
    data["storage"] = {"root": str(tmp_path / "lake")}
    data["sources"]["transactions"]["faults"] = faults or []
    data["sources"]["merchant_risk"]["faults"] = faults or []
    data["airflow"]["retries"] = 0
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def asset_events(uri: str) -> list[dict[str, Any]]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(AssetEvent.extra, AssetEvent.timestamp).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.uri == uri)
        ).all()
    return [dict(extra=r[0], timestamp=r[1]) for r in rows]


def run_dag(spec_path: Path, logical: datetime) -> Any:
    """Put a few-line DAG file for the spec into the session's dags folder, parse it with a
    real DagBag and run it with ``dag.test`` (which needs the DAG in a bundle)."""
    import os

    from airflow.dag_processing.dagbag import DagBag

    dag_file = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / f"{spec_path.stem}.py"
    dag_file.write_text(f"from pipelines.airflow import build_dag\n\ndag = build_dag({str(spec_path)!r})\n")
    bag = DagBag(str(dag_file))
    assert bag.import_errors == {}
    return bag.dags[spec_path.stem].test(logical_date=logical)


@pytest.mark.slow
def test_dag_test_certifies_all_regions_like_the_runner(airflow_db: None, tmp_path: Path) -> None:
    spec_path = write_spec(tmp_path / "dag")
    # a manual run at 2026-01-02 processes the data interval that ended then: 2026-01-01
    dr = run_dag(spec_path, datetime(2026, 1, 2, tzinfo=UTC))
    assert dr.state == "success"
    spec = load_spec(spec_path)
    decision = current_certified(spec)
    assert decision is not None and decision.interval == "2026-01-01"
    assert {k.split("/")[0] for k in decision.generation.members} == set(spec.regions)
    events = asset_events("lockstep://af_fraud/certified")
    assert [e["extra"]["generation_id"] for e in events] == [decision.generation_id]
    assert events[0]["extra"]["interval"] == "2026-01-01"

    # parity with the in-process runner: identical Delta contents, table by table
    plain_spec = load_spec(write_spec(tmp_path / "plain"))
    run_interval(plain_spec, Interval.for_date("2026-01-01"))
    for region in spec.regions:
        for t in spec.tables:
            a = read_table(table_uri(spec.root(), spec.name, region, t.layer, t.name)).collect()
            b = read_table(table_uri(plain_spec.root(), plain_spec.name, region, t.layer, t.name)).collect()
            # exact but for float aggregates: a parallel group-by sums in an order that may differ
            # between two processes in the last bits (amount_mean_7d of the same rows)
            try:
                assert_frame_equal(a.sort(pl.all()), b.sort(pl.all()), check_exact=False, rel_tol=1e-12, abs_tol=0.0)
            except AssertionError as exc:
                raise AssertionError(f"{region}/{t.path}: {exc}") from None


@pytest.mark.slow
def test_blocked_interval_emits_no_asset_event(airflow_db: None, tmp_path: Path) -> None:
    faults = [{"kind": "stale_reference", "regions": ["ap-south"], "dates": ["2026-01-02"]}]
    spec_path = write_spec(tmp_path, faults, name="af_blocked")
    assert run_dag(spec_path, datetime(2026, 1, 2, tzinfo=UTC)).state == "success"
    before = asset_events("lockstep://af_blocked/certified")
    assert len(before) == 1
    dr = run_dag(spec_path, datetime(2026, 1, 3, tzinfo=UTC))
    assert dr.state == "failed"
    spec = load_spec(spec_path)
    gate = [ti for ti in dr.get_task_instances() if ti.task_id == "gate"][0]
    assert gate.state == "failed"
    assert asset_events("lockstep://af_blocked/certified") == before, "a blocked gate emits nothing"
    last = decisions(spec)[-1]
    assert last.interval == "2026-01-02" and not last.certified
    assert any(r["region"] in ("ap-south", "*") for r in last.reasons)
    # consumers keep reading the last certified generation
    assert current_certified(spec).interval == "2026-01-01"  # type: ignore[union-attr]
    from pipelines.certify import read_certified

    for region in spec.regions:
        assert set(read_certified(spec, "card_features", region).collect()["ds"].to_list()) == {"2026-01-01"}


@pytest.mark.slow
def test_the_actor_travels_in_the_payload_not_the_environment(
    airflow_db: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A DAG task's decision records ``airflow:<user>`` without setting ``LOCKSTEP_ACTOR``, so a
    later CLI decision in the same process records the settings' identity, not the task's."""
    import os

    from pipelines.spec.settings import Settings
    from tests.test_bad_input import cli

    monkeypatch.delenv("LOCKSTEP_ACTOR", raising=False)
    data = small_spec_data(regions=3, rows=200, name="af_actor")
    data["storage"] = {"root": str(tmp_path / "lake")}
    stale = data["regions"][1]
    data["sources"]["merchant_risk"]["faults"] = [
        {"kind": "stale_reference", "regions": [stale], "dates": ["2026-01-01"]}]
    data["airflow"]["retries"] = 0
    spec_path = tmp_path / "af_actor.yaml"
    spec_path.write_text(yaml.safe_dump(data))
    assert run_dag(spec_path, datetime(2026, 1, 2, tzinfo=UTC)).state == "failed"  # the gate blocked
    assert "LOCKSTEP_ACTOR" not in os.environ
    spec = load_spec(spec_path)
    block = decisions(spec)[-1]
    assert block.kind == "gate" and not block.certified and block.who.startswith("airflow:"), block.who

    out = cli("override", str(spec_path), "--date", "2026-01-01", "--reason", "reviewed the stale list",
              "--generation", block.generation_id)
    assert out.exit_code == 0, out.output
    overridden = decisions(spec)[-1]
    assert overridden.kind == "override" and overridden.who == Settings().who() != block.who


@pytest.mark.slow
def test_a_region_outage_is_a_blocked_decision_naming_it_and_a_rerun_certifies(
    airflow_db: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One region's storage cannot be written: its tasks fail, the others finish, reconcile
    and gate still run; the gate records a block naming the region and its task's error, the
    alert fires, ``explain`` shows it and the run fails. Once the region's storage is back, a
    re-run of the same interval certifies."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from pipelines.certify import explain

    received: list[dict[str, Any]] = []  # what the alert webhook receives

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("AIRFLOW_CONN_LOCKSTEP_HOOK", json.dumps(
            {"conn_type": "http", "host": f"http://127.0.0.1:{server.server_address[1]}/hooks"}))
        data = small_spec_data(regions=3, rows=200, name="af_outage")
        data["storage"] = {"root": str(tmp_path / "lake-{region}"), "control_root": str(tmp_path / "control")}
        data["airflow"]["retries"] = 0
        data["alerts"] = [{"kind": "webhook", "conn_id": "lockstep_hook"}]
        spec_path = tmp_path / "af_outage.yaml"
        spec_path.write_text(yaml.safe_dump(data))
        spec = load_spec(spec_path)
        down = spec.regions[1]
        (tmp_path / f"lake-{down}").write_text("not a folder")  # the region's storage is unusable

        dr = run_dag(spec_path, datetime(2026, 1, 2, tzinfo=UTC))
        assert dr.state == "failed"
        states = {(ti.task_id.split(".")[-1], ti.map_index): ti.state for ti in dr.get_task_instances()}
        assert states[("reconcile", -1)] == "success" and states[("gate", -1)] == "failed", states
        last = decisions(spec)[-1]
        assert last.interval == "2026-01-01" and not last.certified
        named = [r for r in last.reasons if r["check_id"] == "delivery"]
        assert [r["region"] for r in named] == [down], last.reasons
        assert "ingest: failed" in named[0]["message"] and "is a file, not a folder" in named[0]["message"]
        assert "no evidence for raw/transactions" in named[0]["message"], named[0]["message"]
        assert received and received[0]["event"] == "blocked"  # (a "stale" alert may follow: no generation yet)
        assert any(r["region"] == down and r["check_id"] == "delivery" for r in received[0]["reasons"])
        ex = explain(spec, Interval.for_date("2026-01-01"))
        assert any(f["check_id"] == "delivery" and f["region"] == down and f["blocking"] for f in ex["failed"])

        (tmp_path / f"lake-{down}").unlink()  # the region recovers
        again = run_dag(spec_path, datetime(2026, 1, 2, tzinfo=UTC))
        assert again.state == "success"
        in_force = current_certified(spec)
        assert in_force is not None and in_force.interval == "2026-01-01"
        assert {k.split("/")[0] for k in in_force.generation.members} == set(spec.regions)
    finally:
        server.shutdown()
        server.server_close()
