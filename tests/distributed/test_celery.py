"""Lockstep distributed, for real: Airflow's api-server, scheduler and dag-processor with the
CeleryExecutor, Redis as the broker, PostgreSQL as the metadata DB and Celery's result
backend, three ``airflow celery worker`` processes on their own queues (two region groups of
six regions each, and the control plane), and an S3 stand-in on loopback (moto's server, IAM
enforced) with a bucket per region and a control bucket.

Each worker's environment holds only its own credentials, with the policies
:func:`pipelines.control.policies.s3_policies` derives from the spec: a region group's key
may use its regions' buckets and their prefixes of the control bucket (to publish evidence),
and read the decision log; the control worker's key the control bucket alone. The test shows:

* a 12-region interval certifies and the consumer DAG runs on the Asset event;
* a ``stale_reference`` interval blocks with the differing keys and the consumer does not run;
* the control worker never touched a regional bucket (moto's request log, by signing key);
* a region worker SIGKILLed mid-task and restarted: the task is retried and succeeds, and
  no row is duplicated.

Every process it starts (Airflow, workers, moto) is stopped at the end, whatever happened.
"""

from __future__ import annotations

import importlib.util
import json
import re
import secrets
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.airflow.embedded import EmbeddedAirflow
from pipelines.airflow.postgres import (
    DEFAULT_POSTGRES_ADMIN_URL,
    check_postgres,
    create_database,
    drop_database,
)
from tests.airflow.conftest import REPARSE_UNCHANGED
from tests.conftest import REPO, services_required, small_spec_data


def _slug(queue: str) -> str:
    return queue.replace("-", "_")

pytestmark = [pytest.mark.slow, pytest.mark.services]

NAME = "dist_features"
CONTROL_BUCKET = "lockstep-control"
D1, D2 = "2026-01-01", "2026-01-02"
ROWS = 300

CONSUMER = '''
from datetime import datetime, timezone
from pathlib import Path

from airflow.sdk import DAG, task

from pipelines.airflow import certified_asset
from pipelines.airflow.consumer import certified_generation

SPEC = Path(__file__).with_name("{name}.yaml")

with DAG(dag_id="{name}_consumer", schedule=[certified_asset("{name}")],
         start_date=datetime(2026, 1, 1, tzinfo=timezone.utc), catchup=False, tags=["lockstep"]):

    @task(queue="{queue}")
    def score(**context):
        from pipelines.certify import read_certified
        from pipelines.spec import load_spec

        spec = load_spec(SPEC)
        frame = read_certified(spec, "card_features", "{region}", at=certified_generation(context)).collect()
        return {{"generation": certified_generation(context), "rows": frame.height}}

    score()
'''


def _redis_problem(url: str = "redis://127.0.0.1:6379/0") -> str | None:
    try:
        import redis
    except ImportError:
        return "redis is not installed: pip install 'lockstep[celery]'"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except Exception as exc:
        return f"Redis at {url} does not answer: {exc}"
    return None


@pytest.fixture(scope="module")
def services() -> None:
    problems = [p for p in (check_postgres(DEFAULT_POSTGRES_ADMIN_URL), _redis_problem()) if p]
    for module, extra in (("moto", "dev"), ("airflow.providers.celery", "celery")):
        if importlib.util.find_spec(module) is None:
            problems.append(f"{module} is not installed: pip install 'lockstep[{extra}]'")
    if problems:
        if services_required():
            pytest.fail("LOCKSTEP_REQUIRE_SERVICES=1 but: " + "; ".join(problems), pytrace=False)
        pytest.skip("; ".join(problems))


class Deployment:
    """What the test drives: Airflow, the workers, the S3 stand-in, the spec."""

    def __init__(self, af: EmbeddedAirflow, s3: Any, workers: dict[str, Any], spec_path: Path,
                 groups: dict[str, list[str]], queues: dict[str, str]) -> None:
        self.af, self.s3, self.workers, self.spec_path = af, s3, workers, spec_path
        self.groups, self.queues = groups, queues


@pytest.fixture(scope="module")
def deployment(services: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    from pipelines.control.policies import s3_policies
    from pipelines.spec import parse_spec
    from tests.distributed.s3server import MotoS3, merge_policies
    from tests.distributed.workers import CeleryWorker, stop_all
    from tests.test_s3 import env_name, s3_storage

    data = small_spec_data(12, ROWS, name=NAME)
    regions: list[str] = data["regions"]
    groups = {"a": regions[:6], "b": regions[6:]}
    tag = uuid.uuid4().hex[:8]  # queues of this run only: Redis may be shared
    queues = {"a": f"lockstep-{tag}-a", "b": f"lockstep-{tag}-b", "control": f"lockstep-{tag}-control"}
    data["schedule"] = "None"
    data["storage"] = s3_storage(regions)
    data["validation"]["suites_dir"] = str(REPO / "expectations")
    data["sources"]["merchant_risk"]["faults"] = [
        {"kind": "stale_reference", "regions": [groups["b"][1]], "dates": [D2]}]
    data["airflow"].update({
        "retries": 2, "retry_delay": "3s", "task_granularity": "region",  # 14 tasks an interval, not 50
        "queues": {"default": queues["a"], "control": queues["control"],
                   "regions": {r: queues["b"] for r in groups["b"]}},
    })
    dags = tmp_path_factory.mktemp("dist-dags")
    spec_path = dags / f"{NAME}.yaml"
    spec_path.write_text(yaml.safe_dump(data))
    (dags / f"{NAME}.py").write_text(
        "from pathlib import Path\n\nfrom pipelines.airflow import build_dag\n\n"
        f"dag = build_dag(Path(__file__).with_name('{NAME}.yaml'))\n")
    (dags / f"{NAME}_consumer.py").write_text(
        CONSUMER.format(name=NAME, queue=queues["a"], region=groups["a"][0]))

    # each worker's key holds the policies Lockstep derives from the spec (README: Deploy): a
    # group's key its regions' buckets and their prefixes of the control bucket, and reads the
    # decision log; the control key the control bucket
    policies = s3_policies(parse_spec(data, str(spec_path)))
    grants: dict[str, Any] = {f"group-{g}": merge_policies(*(policies[f"region:{r}"] for r in rs))
                              for g, rs in groups.items()}
    grants["control"] = policies["control"]
    # Its own Airflow, not the suite-wide one (tests/airflow/conftest.py): the CeleryExecutor
    # with Redis, Celery's result backend in PostgreSQL and a task heartbeat timeout short
    # enough to see a killed worker's task retried, where the suite-wide one is LocalExecutor.
    db_url = create_database(admin_url=DEFAULT_POSTGRES_ADMIN_URL)
    home = tmp_path_factory.mktemp("dist-airflow")
    try:
        with MotoS3(tmp_path_factory.mktemp("dist-moto"), buckets=[*(f"lockstep-{r}" for r in regions), CONTROL_BUCKET],
                    grants=grants, record=True) as s3:
            backend = "db+" + db_url.replace("postgresql+psycopg2://", "postgresql://")
            af = EmbeddedAirflow(home, dags_folder=dags, sql_alchemy_conn=db_url, parse_interval=2, extra_env={
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__CELERY__BROKER_URL": "redis://127.0.0.1:6379/0",
                "AIRFLOW__CELERY__RESULT_BACKEND": backend,
                # a killed worker's task is noticed within ~30 s (the default is 5 minutes)
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
                # a task the killed worker had taken from Redis but not yet started stays queued:
                # Celery acknowledges late, so its message waits out Redis' visibility timeout (6 h);
                # the scheduler revokes and requeues it after this (the default is 10 minutes,
                # checked every 2: a run that lost the race took 12 minutes longer)
                "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "90",
                "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT_CHECK_INTERVAL": "10",
                **REPARSE_UNCHANGED,  # new DAG files parsed within 2 s, unchanged ones not every 2 s
            })
            hash_key = secrets.token_hex(32)  # one deployment: every worker hashes personal values alike
            with af:
                def own(group: str | None) -> dict[str, str]:
                    env = {"LOCKSTEP_S3_ENDPOINT": s3.endpoint, "LOCKSTEP_HASH_KEY": hash_key}
                    grant = s3.credentials[f"group-{group}" if group else "control"]
                    env.update({"LOCKSTEP_S3_CONTROL_KEY_ID": grant.key_id, "LOCKSTEP_S3_CONTROL_SECRET": grant.secret})
                    for r in groups.get(group or "", []):
                        env.update({f"{env_name(r)}_KEY_ID": grant.key_id, f"{env_name(r)}_SECRET": grant.secret})
                    return env

                workers = {
                    "a": CeleryWorker("a", [queues["a"]], af.env, own("a"), af.log_dir),
                    "b": CeleryWorker("b", [queues["b"]], af.env, own("b"), af.log_dir),
                    "control": CeleryWorker("control", [queues["control"]], af.env, own(None), af.log_dir,
                                            concurrency=1),
                }
                try:
                    for w in workers.values():
                        w.start()
                    for w in workers.values():
                        w.wait_ready()
                    yield Deployment(af, s3, workers, spec_path, groups, queues)
                finally:
                    stop_all(workers.values())
    finally:
        drop_database(db_url, admin_url=DEFAULT_POSTGRES_ADMIN_URL)


def _wait_and_kill_mid_task(dep: Deployment, run_id: str, timeout: float = 300.0) -> tuple[str, int]:
    """SIGKILL worker b (and its tasks) while one of group b's tasks runs; restart it.
    Returns the (task_id, map_index) that was running."""
    af, worker = dep.af, dep.workers["b"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = [ti for ti in af.client.task_instances(NAME, run_id)
                   if ti["task_id"].startswith("region_") and ti["state"] == "running"
                   and ti.get("queue") == dep.queues["b"]]
        if running:
            target = (running[0]["task_id"], running[0]["map_index"])
            worker.kill()
            time.sleep(2)
            worker.start()
            worker.wait_ready()
            return target
        time.sleep(0.25)
    raise AssertionError(f"no task of group b ran within {timeout:.0f}s:\n{af.client.describe_run(NAME, run_id)}")


def test_celery_workers_per_region_group_certify_block_and_survive_a_kill(deployment: Deployment) -> None:
    import polars as pl

    from pipelines.spec import load_spec
    from pipelines.storage import read_table

    dep = deployment
    af, s3 = dep.af, dep.s3
    af.client.wait_for_dag(NAME)
    af.client.wait_for_dag(f"{NAME}_consumer")
    spec = load_spec(dep.spec_path)

    # 1. a clean interval, with worker b killed mid-task and restarted
    t0 = time.monotonic()
    run1 = af.client.trigger(NAME, datetime(2026, 1, 1, tzinfo=UTC))
    killed = _wait_and_kill_mid_task(dep, run1)
    state = af.client.wait_for_run(NAME, run1, timeout=900)
    wall = time.monotonic() - t0
    assert state == "success", af.client.describe_run(NAME, run1)
    tis = {(ti["task_id"], ti["map_index"]): ti for ti in af.client.task_instances(NAME, run1)}
    assert tis[killed]["state"] == "success" and tis[killed]["try_number"] >= 2, (killed, tis[killed])
    # each task ran on its group's queue, reconcile and gate on the control queue
    for (task_id, _), ti in tis.items():
        group = task_id.split(".")[0]
        assert ti["queue"] == {"reconcile": dep.queues["control"], "gate": dep.queues["control"]}.get(
            task_id, dep.queues["b" if group == f"region_{_slug(dep.queues['b'])}" else "a"]), ti
    opts = s3.options("admin")
    for region in spec.regions:  # retried or not, every region holds exactly its rows: none duplicated
        for layer, table in (("raw", "transactions"), ("features", "card_features")):
            rows = read_table(spec.table_uri(region, layer, table), partition={"ds": D1},
                              storage_options=opts).select("txn_id").collect()
            assert rows.height == rows["txn_id"].n_unique() > 0, (region, table, rows.height)
        raw = read_table(spec.table_uri(region, "raw", "transactions"), storage_options=opts).collect()
        assert raw.filter(pl.col("ds") == D1).height == ROWS, region

    [event] = af.client.asset_events(source_dag_id=NAME, source_run_id=run1)
    assert event["extra"]["interval"] == D1
    consumed = af.client.wait_for_dag_run(f"{NAME}_consumer", run_type="asset_triggered", timeout=300)
    assert consumed["state"] == "success", af.client.describe_run(f"{NAME}_consumer", consumed["dag_run_id"])
    out = af.client.xcom(f"{NAME}_consumer", consumed["dag_run_id"], "score")
    assert out["generation"] == event["extra"]["generation_id"] and out["rows"] > 0

    # 2. a stale_reference interval: blocked with the differing keys, no event, no consumer run
    run2 = af.client.trigger(NAME, datetime(2026, 1, 2, tzinfo=UTC))
    assert af.client.wait_for_run(NAME, run2, timeout=900) == "failed"
    gate = {ti["task_id"]: ti for ti in af.client.task_instances(NAME, run2)}["gate"]
    assert gate["state"] == "failed"
    path = f"/dags/{NAME}/dagRuns/{run2}/taskInstances/gate/logs/{gate['try_number']}"
    log = json.dumps(af.client.api("GET", path, params={"full_content": "true"}))
    stale = dep.groups["b"][1]
    assert f"BLOCKED {NAME} {D2}: parity.merchant_risk {stale}/merchant_risk" in log, log[-3000:]
    assert re.search(r"\d+ key\(s\) differ", log), log[-3000:]
    assert af.client.asset_events(source_dag_id=NAME, source_run_id=run2) == []
    time.sleep(5)
    assert len(af.client.dag_runs(f"{NAME}_consumer")) == 1

    # 3. the control worker never touched a regional bucket; no credential left its grant
    owner = s3.key_owner()
    by_grant: dict[str, set[str]] = {}
    for q in s3.requests():
        by_grant.setdefault(owner.get(q.key_id or "", str(q.key_id)), set()).add(q.bucket)
    assert by_grant.get("control") == {CONTROL_BUCKET}, by_grant
    for g, rs in dep.groups.items():
        assert by_grant.get(f"group-{g}", set()) <= {*(f"lockstep-{r}" for r in rs), CONTROL_BUCKET}, by_grant
    assert s3.denied() == [], s3.denied()[:5]
    print(f"\n12-region interval of {ROWS} rows/region under Celery (3 workers, one killed): {wall:.1f} s")
