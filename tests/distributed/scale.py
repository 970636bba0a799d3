"""Scale figures under Celery: one 12-region interval per worker count, wall time from trigger
to the gate's end, and the bytes that cross between the region buckets and the control
bucket (from the S3 server's request log).

    .venv/bin/python -m tests.distributed.scale --rows 1000000 --workers 1 2 3

Every worker serves every queue with concurrency 1 (so N workers = N task slots); each
worker count processes a new interval (so nothing is skipped as unchanged). Starts its own
Airflow (CeleryExecutor, Redis, a fresh PostgreSQL database), moto and workers, and stops
them all at the end.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from pipelines.airflow.embedded import EmbeddedAirflow
from pipelines.airflow.postgres import (
    DEFAULT_POSTGRES_ADMIN_URL,
    create_database,
    drop_database,
)
from tests.conftest import REPO, small_spec_data
from tests.distributed.s3server import MotoS3
from tests.distributed.workers import CeleryWorker, stop_all
from tests.test_s3 import env_name, s3_storage

NAME = "scale_features"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--regions", type=int, default=12)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3])
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lockstep-scale-"))
    data = small_spec_data(args.regions, args.rows, name=NAME)
    data["sources"]["transactions"]["merchants"] = 2000
    data["sources"]["merchant_risk"]["merchants"] = 2000
    regions = data["regions"]
    data["schedule"] = "None"
    data["storage"] = s3_storage(regions)
    data["validation"]["suites_dir"] = str(REPO / "expectations")
    data["airflow"].update({"retries": 0, "task_granularity": "region",
                            "queues": {"default": "scale-regions", "control": "scale-control"}})
    dags = work / "dags"
    dags.mkdir()
    (dags / f"{NAME}.yaml").write_text(yaml.safe_dump(data))
    (dags / f"{NAME}.py").write_text("from pathlib import Path\nfrom pipelines.airflow import build_dag\n"
                                     f"dag = build_dag(Path(__file__).with_name('{NAME}.yaml'))\n")
    buckets = [f"lockstep-{r}" for r in regions] + ["lockstep-control"]
    grants = {"regions": buckets, "control": ["lockstep-control"]}
    db = create_database(admin_url=DEFAULT_POSTGRES_ADMIN_URL)
    results = []
    try:
        with MotoS3(work / "moto", buckets=buckets, grants=grants) as s3:
            af = EmbeddedAirflow(work / "airflow", dags_folder=dags, sql_alchemy_conn=db, parse_interval=2, extra_env={
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__CELERY__BROKER_URL": "redis://127.0.0.1:6379/0",
                "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + db.replace("postgresql+psycopg2://", "postgresql://"),
            })
            with af:
                af.client.wait_for_dag(NAME)
                creds = s3.credentials["regions"]
                own = {"LOCKSTEP_S3_ENDPOINT": s3.endpoint,
                       "LOCKSTEP_S3_CONTROL_KEY_ID": creds.key_id, "LOCKSTEP_S3_CONTROL_SECRET": creds.secret}
                for r in regions:
                    own.update({f"{env_name(r)}_KEY_ID": creds.key_id, f"{env_name(r)}_SECRET": creds.secret})
                for i, n in enumerate(args.workers):
                    workers = [CeleryWorker(f"s{n}-{k}", ["scale-regions", "scale-control"], af.env, own, af.log_dir,
                                            concurrency=1) for k in range(n)]
                    try:
                        for w in workers:
                            w.start()
                        for w in workers:
                            w.wait_ready()
                        s3.recording.write_text("")
                        day = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=i)
                        t0 = time.monotonic()
                        run = af.client.trigger(NAME, day)
                        state = af.client.wait_for_run(NAME, run, timeout=7200, poll=2)
                        wall = time.monotonic() - t0
                        tis = af.client.task_instances(NAME, run)
                        durations = defaultdict(float)
                        for ti in tis:
                            durations[ti["task_id"]] += float(ti.get("duration") or 0)
                        moved: dict[str, int] = defaultdict(int)
                        for q in s3.requests():
                            side = "control" if q.bucket == "lockstep-control" else "regions"
                            moved[f"{side} bytes in"] += q.bytes_in
                            moved[f"{side} bytes out"] += q.bytes_out
                        results.append((n, state, wall, dict(durations), dict(moved)))
                        print(f"workers={n} state={state} wall={wall:.1f}s task seconds={dict(durations)} "
                              f"bytes={dict(moved)}", flush=True)
                    finally:
                        stop_all(workers)
    finally:
        drop_database(db, admin_url=DEFAULT_POSTGRES_ADMIN_URL)
    print("\nworkers  state    wall s   region task s (sum)   reconcile s   gate s")
    for n, state, wall, d, _ in results:
        region = sum(v for k, v in d.items() if k.startswith("region"))
        print(f"{n:7d}  {state:7s} {wall:8.1f}   {region:19.1f}   {d.get('reconcile', 0):11.1f}   {d.get('gate', 0):6.1f}")


if __name__ == "__main__":
    main()
