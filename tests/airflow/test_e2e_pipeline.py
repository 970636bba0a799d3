"""The flagship shape end to end under a real Airflow: scheduler, dag-processor, api-server,
LocalExecutor, metadata DB on PostgreSQL (SQLite without it). A 12-region pipeline is
triggered over REST API v2, certifies, its Asset event triggers the scoring DAG, which scores
the certified interval in every region with the model release in force for it (trained and
promoted beforehand on the day before, certified in-process); the Lockstep page answers from
the real api-server.

With ``LOCKSTEP_MEASURE_OVERHEAD=1`` it also measures the orchestration overhead: scheduler
wall time over in-process wall time for the same interval, printed in the session's timing
summary (off by default: it re-runs the interval, a measurement rather than a check)."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import yaml

from pipelines.airflow.embedded import EmbeddedAirflow
from pipelines.models import promote, shadow_score, train
from pipelines.runner import run_interval
from pipelines.spec import Interval, load_spec, parse_spec
from tests.airflow.conftest import TIMINGS
from tests.conftest import small_spec_data

DAY = "2026-01-02"

CONSUMER = """from pathlib import Path

from pipelines.airflow import build_scoring_dag

dag = build_scoring_dag(Path(__file__).with_name("e2e_fraud.yaml"), dag_id="e2e_scoring")
"""


@pytest.mark.slow
def test_pipeline_certifies_and_triggers_the_consumer(
    embedded_airflow: EmbeddedAirflow, airflow_dags: Path, tmp_path: Path
) -> None:
    af = embedded_airflow
    data = small_spec_data(regions=12, rows=300, name="e2e_fraud")
    data["storage"] = {"root": str(tmp_path / "lake")}
    data["schedule"] = "None"  # manual runs only: no scheduled interval competes with the measured one
    data["validation"]["suites_dir"] = str(Path(__file__).resolve().parents[2] / "expectations")
    data["models"] = {"name": "e2e_model", "window": 1,  # the gate over the one day held, any AUC
                      "promotion": {"window": 1, "max_auc_drop": 1.0, "max_psi": 10.0}}
    (airflow_dags / "e2e_fraud.yaml").write_text(yaml.safe_dump(data))
    spec = load_spec(airflow_dags / "e2e_fraud.yaml")
    # the day before, certified in-process: the model is trained on it and released from the 2nd
    assert run_interval(spec, Interval.for_date("2026-01-01")).decision.certified  # type: ignore[union-attr]
    trained = train(spec, until="2026-01-01")
    for region in spec.regions:  # the promotion gate asks for shadow scores in every region
        shadow_score(spec, trained.version, "2026-01-01", region)
    release = promote(spec, trained.version, effective_from=DAY, why="e2e model")
    (airflow_dags / "e2e_fraud.py").write_text(
        "from pathlib import Path\n\nfrom pipelines.airflow import build_dag\n\n"
        "dag = build_dag(Path(__file__).with_name('e2e_fraud.yaml'))\n")
    (airflow_dags / "e2e_scoring.py").write_text(CONSUMER)
    af.client.wait_for_dag("e2e_fraud")
    af.client.wait_for_dag("e2e_scoring")

    t0 = time.monotonic()
    run_id = af.client.trigger("e2e_fraud", datetime(2026, 1, 2, tzinfo=UTC))  # no timetable: the logical date's day
    state = af.client.wait_for_run("e2e_fraud", run_id, timeout=600)
    scheduled = time.monotonic() - t0
    assert state == "success", af.client.describe_run("e2e_fraud", run_id)
    tis = af.client.task_instances("e2e_fraud", run_id)
    assert sum(ti["task_id"] == "region.transform" for ti in tis) == 12
    # every task process was forked warm (pipelines/airflow/warm.py): none imported Lockstep's
    # modules itself; the task's own log line says which
    for ti in tis:
        log = af.client.task_log("e2e_fraud", run_id, ti["task_id"], ti["try_number"], ti["map_index"])
        assert "task process warm" in log and "task process cold" not in log, (ti["task_id"], log[-2000:])

    [event] = af.client.asset_events(source_dag_id="e2e_fraud", source_run_id=run_id)
    assert event["uri"] == "lockstep://e2e_fraud/certified"
    assert event["extra"]["interval"] == DAY and event["extra"]["generation_id"].startswith(f"{DAY}.")

    consumed = af.client.wait_for_dag_run("e2e_scoring", run_type="asset_triggered", timeout=300)
    assert consumed["state"] == "success", af.client.describe_run("e2e_scoring", consumed["dag_run_id"])
    scored = af.client.xcom("e2e_scoring", consumed["dag_run_id"], "scored")
    assert scored["interval"] == DAY and scored["release_id"] == release.release_id
    assert set(scored["regions"]) == set(spec.regions)
    for region, out in scored["regions"].items():
        assert out["rows"] > 0 and out["release_id"] == [release.release_id], region

    auth = {"Authorization": f"Bearer {af.client.token()}"}  # the Lockstep page is behind Airflow's auth
    page = httpx.get(f"{af.url}/lockstep/", headers=auth, timeout=30)
    assert page.status_code == 200 and "e2e_fraud" in page.text and "in force" in page.text
    api = httpx.get(f"{af.url}/lockstep/api/pipelines/e2e_fraud/status", headers=auth, timeout=30).json()
    assert api["certified"]["generation_id"] == event["extra"]["generation_id"]

    TIMINGS["12-region interval under the scheduler"] = scheduled
    if os.environ.get("LOCKSTEP_MEASURE_OVERHEAD") != "1":
        return  # a measurement, not an assertion: opt in (it re-runs the interval in-process)
    # orchestration overhead: the same interval through the core runner, in-process
    local = parse_spec({**data, "storage": {"root": str(tmp_path / "local")}}, "e2e-local").with_path(spec.path)
    t0 = time.monotonic()
    run_interval(local, Interval.for_date(DAY))
    in_process = time.monotonic() - t0
    TIMINGS["same interval in-process"] = in_process
    TIMINGS["overhead ratio (x, not s)"] = scheduled / in_process
