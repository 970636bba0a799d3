"""Event-driven runs under a real Airflow 3: files land, duplicate landing notifications
arrive over REST API v2 (``POST /assets/events``), and the ``<pipeline>_landing`` DAG starts
exactly one pipeline run per interval and delivery; a re-delivery of one region's hour
re-certifies that hour alone.

``LOCKSTEP_LANDING_NOTIFICATIONS`` sets how many duplicates are posted (default 300; the
closing note's figure used 10000)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from pipelines.airflow.embedded import EmbeddedAirflow
from pipelines.certify import decisions
from pipelines.landing import ready
from pipelines.spec import Interval, load_spec
from tests.airflow.conftest import TIMINGS
from tests.test_late_data import deliver, hourly_spec

NOTIFICATIONS = int(os.environ.get("LOCKSTEP_LANDING_NOTIFICATIONS", "300"))
HOURS = (4, 5)


def hour(h: int) -> Interval:
    return Interval.for_date("2026-01-01", "hour", h)


def settle(af: EmbeddedAirflow, pipeline: str, runs: int, timeout: float = 600) -> list[dict[str, object]]:
    """Wait until ``pipeline`` has ``runs`` finished runs and its landing DAG has nothing in
    flight for two polls in a row; the pipeline's runs."""
    deadline = time.monotonic() + timeout
    quiet = 0
    while time.monotonic() < deadline:
        mine = af.client.dag_runs(pipeline, limit=1000)
        landing = af.client.dag_runs(f"{pipeline}_landing", limit=1000)
        busy = [r for r in mine + landing if r["state"] not in ("success", "failed")]
        done = [r for r in mine if r["state"] in ("success", "failed")]
        quiet = quiet + 1 if not busy and len(done) >= runs else 0
        if quiet >= 2:
            return mine
        time.sleep(3)
    raise AssertionError(f"not settled: {af.client.dag_runs(pipeline, limit=1000)}\n"
                         f"{af.client.dag_runs(f'{pipeline}_landing', limit=1000)}")


@pytest.mark.slow
def test_duplicate_notifications_start_one_run_per_interval_and_delivery(
    embedded_airflow: EmbeddedAirflow, airflow_dags: Path, tmp_path: Path
) -> None:
    af = embedded_airflow
    landing = tmp_path / "landing"
    data = hourly_spec(landing).model_dump(mode="json")
    data["name"] = "landed_fraud"
    data["storage"] = {"root": str(tmp_path / "lake")}
    data["validation"]["suites_dir"] = str(Path(__file__).resolve().parents[2] / "expectations")
    data["airflow"].update(trigger="landing", task_granularity="region", retries=0)
    data.pop("consumers", None)
    (airflow_dags / "landed_fraud.yaml").write_text(yaml.safe_dump(data))
    (airflow_dags / "landed_fraud.py").write_text(
        "from pathlib import Path\n\nfrom pipelines.airflow import build_dag\n\n"
        "dag = build_dag(Path(__file__).with_name('landed_fraud.yaml'))\n")
    spec = load_spec(airflow_dags / "landed_fraud.yaml")
    for h in HOURS:
        for region in spec.regions:
            deliver(landing, spec, region, hour(h))
    af.client.wait_for_dag("landed_fraud")
    af.client.wait_for_dag("landed_fraud_landing")
    dag = af.client.api("GET", "/dags/landed_fraud")
    assert dag["timetable_summary"] in (None, "None"), dag  # no cron schedule under the landing trigger

    # the same notification, NOTIFICATIONS times, from 4 senders at once
    asset_id = af.client.landing_asset_id("landed_fraud")
    keys = [hour(h).key for h in HOURS]
    t0 = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: af.client.notify_landing("landed_fraud", keys, asset_id=asset_id), range(NOTIFICATIONS)))
    posted = time.monotonic() - t0
    runs = settle(af, "landed_fraud", runs=len(HOURS))
    settled = time.monotonic() - t0
    TIMINGS[f"{NOTIFICATIONS} landing notifications posted"] = posted
    TIMINGS[f"{NOTIFICATIONS} notifications to {len(HOURS)} certified runs"] = settled

    expected = {x.run_id for x in ready(spec, now=datetime.now(UTC), intervals=keys)}
    assert {r["dag_run_id"] for r in runs} == expected and len(runs) == len(HOURS), runs
    assert all(r["state"] == "success" for r in runs), [af.client.describe_run("landed_fraud", str(r["dag_run_id"]))
                                                       for r in runs]
    log = decisions(spec)
    assert sorted(d.interval for d in log) == keys and all(d.certified for d in log), log
    landing_runs = af.client.dag_runs("landed_fraud_landing", limit=1000)
    assert 1 <= len(landing_runs) < NOTIFICATIONS, "duplicate notifications were taken together"

    # one region re-delivers hour 5 (late rows): one new run, for hour 5, re-certifying it alone
    path = landing / spec.regions[0] / "2026-01-01T05.parquet"
    mtime = path.stat().st_mtime_ns
    deliver(landing, spec, spec.regions[0], hour(5))
    os.utime(path, ns=(mtime + 1_000_000_000, mtime + 1_000_000_000))
    cli_env = {**os.environ, "LOCKSTEP_AIRFLOW_URL": af.url, "LOCKSTEP_AIRFLOW_USERNAME": "admin",
               "LOCKSTEP_AIRFLOW_PASSWORD": af.password}
    for _ in range(2):  # the operator's way: `lockstep notify`, twice
        out = subprocess.run([str(Path(sys.executable).with_name("lockstep")), "notify",
                              str(airflow_dags / "landed_fraud.yaml"), "--interval", hour(5).key, "--json"],
                             env=cli_env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr
        said = json.loads(out.stdout)
        assert [x["interval"] for x in said["landed_now"]] == [hour(5).key] and said["asset_event_id"], said
    after = settle(af, "landed_fraud", runs=len(HOURS) + 1)
    new = [r for r in after if r["dag_run_id"] not in expected]
    assert len(after) == len(HOURS) + 1 and len(new) == 1 and new[0]["state"] == "success", after
    assert str(new[0]["dag_run_id"]).startswith(f"landing__{hour(5).key}__")
    later = decisions(spec)[len(log):]
    assert [(d.interval, d.certified) for d in later] == [(hour(5).key, True)], later
