"""The harness itself: a real Airflow 3, driven only over REST API v2.

A producer DAG's last task updates an Asset with an ``extra`` payload; a consumer DAG
scheduled on that Asset must run because of that event and read the payload through
``triggering_asset_events``. A daily DAG is backfilled through ``POST /api/v2/backfills``.
These are the mechanisms the DAG factory builds the gate and the model DAGs on.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from pipelines.airflow.embedded import EmbeddedAirflow

from .conftest import TIMINGS, services_required

ASSET_URI = "lockstep://toy/certified"

TOY_ASSET = f"""
from airflow.sdk import Asset

CERTIFIED = Asset(name="toy_certified", uri="{ASSET_URI}", group="lockstep")
"""

PRODUCER = """
from __future__ import annotations

import pendulum
from airflow.sdk import DAG, task

from toy_assets import CERTIFIED

with DAG(
    dag_id="toy_producer",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["lockstep-test"],
):

    @task
    def build() -> dict:
        return {"rows": 3}

    @task(outlets=[CERTIFIED])
    def certify(ref: dict, *, outlet_events=None, run_id=None) -> dict:
        outlet_events[CERTIFIED].extra = {"generation": run_id, "rows": ref["rows"]}
        return ref

    certify(build())
"""

CONSUMER = """
from __future__ import annotations

import pendulum
from airflow.sdk import DAG, task

from toy_assets import CERTIFIED

with DAG(
    dag_id="toy_consumer",
    schedule=[CERTIFIED],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["lockstep-test"],
):

    @task
    def read(*, triggering_asset_events=None) -> dict:
        events = triggering_asset_events[CERTIFIED]
        last = events[-1]
        return {
            "count": len(events),
            "extra": dict(last.extra),
            "source_dag_id": last.source_dag_id,
            "source_run_id": last.source_run_id,
        }

    read()
"""

PARTITIONED = """
from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Asset, Metadata, PartitionedAssetTimetable, PartitionedAtRuntime, task

BY_DAY = Asset(name="toy_by_day", uri="lockstep://toy/by-day", group="lockstep")

with DAG(
    dag_id="toy_partition_producer",
    schedule=PartitionedAtRuntime(),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    tags=["lockstep-test"],
):

    @task(outlets=[BY_DAY])
    def publish(*, dag_run=None):
        yield Metadata(BY_DAY, extra={"partition": dag_run.partition_key})

    publish()

with DAG(
    dag_id="toy_partition_consumer",
    schedule=PartitionedAssetTimetable(assets=BY_DAY),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    tags=["lockstep-test"],
):

    @task
    def read(*, dag_run=None, triggering_asset_events=None) -> dict:
        [event] = triggering_asset_events[BY_DAY]
        return {"run": dag_run.partition_key, "event": event.partition_key, "extra": dict(event.extra)}

    read()
"""

DAILY = """
from __future__ import annotations

import pendulum
from airflow.sdk import DAG, task

with DAG(
    dag_id="toy_daily",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    tags=["lockstep-test"],
):

    @task
    def interval(*, data_interval_start=None, data_interval_end=None) -> list[str]:
        return [data_interval_start.isoformat(), data_interval_end.isoformat()]

    interval()
"""


def write_dag(folder: Path, name: str, source: str) -> None:
    (folder / name).write_text(textwrap.dedent(source).lstrip())


@pytest.mark.slow
@pytest.mark.services
def test_metadata_db_is_postgresql(postgres_problem: str | None) -> None:
    if postgres_problem is None:
        return
    message = f"PostgreSQL absent ({postgres_problem}): the embedded Airflow runs on SQLite"
    if services_required():
        pytest.fail(f"LOCKSTEP_REQUIRE_SERVICES=1: {message}", pytrace=False)
    pytest.skip(message)


@pytest.mark.slow
def test_asset_event_triggers_consumer(
    embedded_airflow: EmbeddedAirflow, airflow_dags: Path
) -> None:
    af = embedded_airflow
    write_dag(airflow_dags, "toy_assets.py", TOY_ASSET)
    write_dag(airflow_dags, "toy_producer.py", PRODUCER)
    write_dag(airflow_dags, "toy_consumer.py", CONSUMER)
    t0 = time.monotonic()
    producer = af.client.wait_for_dag("toy_producer")
    consumer = af.client.wait_for_dag("toy_consumer")
    TIMINGS["parse 2 new DAG files"] = time.monotonic() - t0
    assert not producer["is_paused"] and not consumer["is_paused"]
    assert af.client.dag_runs("toy_consumer") == []

    t0 = time.monotonic()
    run_id = af.client.trigger("toy_producer", conf={"why": "harness test"})
    state = af.client.wait_for_run("toy_producer", run_id, timeout=180)
    TIMINGS["producer run (2 tasks)"] = time.monotonic() - t0
    assert state == "success", af.client.describe_run("toy_producer", run_id)
    assert {ti["task_id"]: ti["state"] for ti in af.client.task_instances("toy_producer", run_id)} == {
        "build": "success",
        "certify": "success",
    }

    events = af.client.asset_events(source_dag_id="toy_producer", source_run_id=run_id)
    assert len(events) == 1
    event = events[0]
    assert event["uri"] == ASSET_URI
    assert event["source_task_id"] == "certify"
    assert event["extra"] == {"generation": run_id, "rows": 3}

    t0 = time.monotonic()
    consumed = af.client.wait_for_dag_run("toy_consumer", run_type="asset_triggered", timeout=180)
    TIMINGS["consumer run after the event"] = time.monotonic() - t0
    assert consumed["state"] == "success", af.client.describe_run("toy_consumer", consumed["dag_run_id"])
    assert consumed["triggered_by"] == "asset"
    upstream = af.client.upstream_asset_events("toy_consumer", consumed["dag_run_id"])
    assert [e["id"] for e in upstream] == [event["id"]]
    # the event records the run it created, and the consumer's task saw the same payload
    refreshed = af.client.asset_events(source_dag_id="toy_producer", source_run_id=run_id)[0]
    assert [r["run_id"] for r in refreshed["created_dagruns"]] == [consumed["dag_run_id"]]
    seen = af.client.xcom("toy_consumer", consumed["dag_run_id"], "read")
    assert seen == {
        "count": 1,
        "extra": {"generation": run_id, "rows": 3},
        "source_dag_id": "toy_producer",
        "source_run_id": run_id,
    }
    [asset] = af.client.assets(uri_pattern="lockstep://toy")
    assert asset["uri"] == ASSET_URI and asset["name"] == "toy_certified"


@pytest.mark.slow
def test_backfill_through_rest(embedded_airflow: EmbeddedAirflow, airflow_dags: Path) -> None:
    af = embedded_airflow
    write_dag(airflow_dags, "toy_daily.py", DAILY)
    af.client.wait_for_dag("toy_daily")
    body = {"from_date": "2026-11-10T00:00:00+00:00", "to_date": "2026-11-12T00:00:00+00:00"}
    dry = af.client.backfill("toy_daily", **body, dry_run=True)
    planned = sorted(r["logical_date"] for r in dry["backfills"])
    assert len(planned) == 3, dry

    t0 = time.monotonic()
    backfill = af.client.backfill("toy_daily", **body, max_active_runs=3)
    assert backfill["dag_id"] == "toy_daily" and backfill["reprocess_behavior"] == "none"

    def finished() -> list[dict] | None:
        runs = af.client.dag_runs("toy_daily", run_type="backfill")
        done = len(runs) == 3 and all(r["state"] in {"success", "failed"} for r in runs)
        return runs if done else None

    runs = af.client.wait_for(finished, timeout=240, what="3 backfill runs of toy_daily")
    TIMINGS["backfill of 3 intervals"] = time.monotonic() - t0
    assert [r["state"] for r in runs] == ["success"] * 3
    assert sorted(r["logical_date"] for r in runs) == planned
    for run in runs:
        seen = [
            datetime.fromisoformat(d) for d in af.client.xcom("toy_daily", run["dag_run_id"], "interval")
        ]
        expected = [
            datetime.fromisoformat(run[k]) for k in ("data_interval_start", "data_interval_end")
        ]
        assert seen == expected


@pytest.mark.slow
def test_partition_key_flows_to_consumer(
    embedded_airflow: EmbeddedAirflow, airflow_dags: Path
) -> None:
    af = embedded_airflow
    write_dag(airflow_dags, "toy_partitions.py", PARTITIONED)
    af.client.wait_for_dag("toy_partition_producer")
    consumer = af.client.wait_for_dag("toy_partition_consumer")
    assert consumer["timetable_partitioned"]

    t0 = time.monotonic()
    run_id = af.client.trigger("toy_partition_producer", partition_key="2026-11-24")
    assert af.client.wait_for_run("toy_partition_producer", run_id, timeout=180) == "success"
    [event] = af.client.asset_events(source_dag_id="toy_partition_producer", source_run_id=run_id)
    assert event["partition_key"] == "2026-11-24"
    assert event["extra"] == {"partition": "2026-11-24"}

    consumed = af.client.wait_for_dag_run("toy_partition_consumer", timeout=180)
    TIMINGS["partitioned producer + consumer"] = time.monotonic() - t0
    assert consumed["state"] == "success"
    assert consumed["partition_key"] == "2026-11-24"
    assert af.client.xcom("toy_partition_consumer", consumed["dag_run_id"], "read") == {
        "run": "2026-11-24",
        "event": "2026-11-24",
        "extra": {"partition": "2026-11-24"},
    }


# --------------------------------------------------------------------------- lockstep airflow up


def _lockstep() -> str:
    return str(Path(sys.executable).parent / "lockstep")


@pytest.mark.slow
def test_airflow_up_shares_the_data_root_starts_paused_and_backfills_by_task(tmp_path: Path) -> None:
    """``lockstep airflow up`` as a user runs it, in a project folder: it says where the data
    goes and what it is doing while it starts, schedules nothing by itself, and a backfill
    through it lands where the CLI reads; the same backfill again has nothing to do."""
    # Its own Airflow, not the suite-wide one: starting Airflow is what it tests (the command's
    # start-up and stop messages, DAGs paused at creation, the components' working directory
    # and data root resolved from the project folder).
    from pipelines.airflow.client import AirflowClient
    from pipelines.airflow.embedded import free_port
    from pipelines.certify import current_certified
    from pipelines.spec import load_spec
    from tests.conftest import small_spec_data

    repo = Path(__file__).resolve().parents[2]
    project = tmp_path / "proj"
    (project / "dags").mkdir(parents=True)
    day = date.today() - timedelta(days=1)  # the latest closed interval: the one a first start would run
    data = small_spec_data(regions=2, rows=200, name="up_fraud")
    data.update(schedule="@daily", start_date=(day - timedelta(days=2)).isoformat())
    data["storage"] = {"root": "../lockstep-data"}  # relative to the spec: <project>/lockstep-data
    data["validation"]["suites_dir"] = str(repo / "expectations")
    data["airflow"].update(retries=0, catchup=False)
    (project / "dags" / "up_fraud.yaml").write_text(yaml.safe_dump(data))
    (project / "dags" / "up_fraud.py").write_text(
        "from pathlib import Path\n\nfrom pipelines.airflow import build_dag\n\n"
        "dag = build_dag(Path(__file__).with_name('up_fraud.yaml'))\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW") and k != "LOCKSTEP_ROOT"}
    port = free_port()
    lines: list[str] = []
    proc = subprocess.Popen([_lockstep(), "airflow", "up", "--port", str(port), "--home", ".airflow"], cwd=project,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        deadline = time.monotonic() + 300
        while not any("Airflow is up" in line for line in lines):
            assert proc.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "".join(lines)
            time.sleep(0.5)
        out = "".join(lines)
        assert "starting Airflow: migrating the metadata DB" in out
        assert "starting Airflow: waiting for" in out
        root = (project / "lockstep-data").resolve()
        assert f"data       {root}  (up_fraud;" in out
        password = re.search(r"log in as\s+admin / (\S+)", out).group(1)  # type: ignore[union-attr]
        client = AirflowClient(f"http://127.0.0.1:{port}", "admin", password)

        def dag() -> dict[str, Any] | None:
            try:
                return dict(client.api("GET", "/dags/up_fraud"))
            except Exception:
                return None

        t0 = time.monotonic()
        while (found := dag()) is None:
            assert time.monotonic() - t0 < 120, "up_fraud never parsed:\n" + "".join(lines)
            time.sleep(1)
        assert found["is_paused"] is True
        # every component Airflow's home page reports on is up, the triggerer included
        health = client.health()
        assert health["triggerer"]["status"] == "healthy", health
        # the view comes from the installed package's entry point: this project has no plugins/
        assert not (project / "plugins").exists()
        listed = httpx.get(f"http://127.0.0.1:{port}/lockstep/api/pipelines",
                           headers={"Authorization": f"Bearer {client.token()}"}, timeout=30)
        assert listed.status_code == 200 and "up_fraud" in listed.text, listed.text[:500]
        time.sleep(8)  # a few scheduler loops: a first start must not schedule the latest interval
        assert client.api("GET", "/dags/up_fraud/dagRuns")["total_entries"] == 0

        cli_env = {**env, "LOCKSTEP_AIRFLOW_URL": f"http://127.0.0.1:{port}",
                   "LOCKSTEP_AIRFLOW_USERNAME": "admin", "LOCKSTEP_AIRFLOW_PASSWORD": password,
                   "COLUMNS": "200"}
        args = [_lockstep(), "backfill", "dags/up_fraud.yaml", "--via", "airflow", "--start", day.isoformat(),
                "--end", day.isoformat()]
        refused = subprocess.run(args, cwd=project, env=cli_env, capture_output=True, text=True, timeout=120)
        assert refused.returncode != 0 and "is paused" in refused.stdout + refused.stderr

        ran = subprocess.run([*args, "--unpause"], cwd=project, env=cli_env, capture_output=True, text=True,
                             timeout=900)
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert "ran 1 run(s); 1 succeeded" in ran.stdout
        # one row: the new run, finished task instances of all it had (2 regions x 4 steps, reconcile, gate)
        assert re.search(rf"backfill__\S+\s.*{day.isoformat()}T00:00:00Z\s.*success\s.*10/10", ran.stdout), ran.stdout
        # the data is where the CLI reads it: <project>/lockstep-data, not under the Airflow home
        assert (root / "up_fraud" / "eu-west" / "raw" / "transactions").is_dir()
        assert not (project / ".airflow" / "lockstep-data").exists()
        cwd = os.getcwd()
        try:
            os.chdir(project)
            certified = current_certified(load_spec(project / "dags" / "up_fraud.yaml"))
        finally:
            os.chdir(cwd)
        assert certified is not None and certified.interval == day.isoformat()
        # no scheduled run next to the backfill's: it held the latest interval before the unpause
        runs = client.api("GET", "/dags/up_fraud/dagRuns")["dag_runs"]
        assert [r["run_type"] for r in runs] == ["backfill"]

        again = subprocess.run(args, cwd=project, env=cli_env, capture_output=True, text=True, timeout=120)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "nothing to do" in again.stdout
        assert "backfill__" not in again.stdout and "ran " not in again.stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    assert "Stopping Airflow" in "".join(lines)
