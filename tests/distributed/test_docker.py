"""docker/ for real, as README's Deploy section runs it: ``docker/init-secrets.sh``, ``make
images`` (``docker/build-images.sh``), ``compose up -d``; then issue 22's Done-when on one
interval (see the test's docstring) and ``compose down -v``.

No container registry is reachable on the test machines, so ``build-images.sh`` builds the
bases from Debian's packages (``debootstrap`` + ``docker import``, then
``docker/test/*.Dockerfile``); users with a registry get the official images. pip inside
the build reaches PyPI through the host's network and CA bundle.

Needs dockerd (started here when it is installed but not running, and stopped again),
docker-compose (v1) or the compose plugin, and debootstrap for the first build. With
``LOCKSTEP_REQUIRE_SERVICES=1`` anything missing fails instead of skipping.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
import yaml

from pipelines.airflow.embedded import free_port
from tests.conftest import REPO, services_required

# the image tag the test builds and runs (fixed: the layer cache makes a rebuild cheap; one test
# builds them, whichever xdist worker runs it); containers, networks and volumes are the compose
# project's, named per run (lockstep-test-<uuid>), so two runs on one dockerd do not meet
TAG = "docker-test"
PIPELINE = "fraud_features"
DOWN = "eu-west"          # the region whose bucket goes dark, then comes back


def _run(*args: str, timeout: float = 1800, env: dict[str, str] | None = None, cwd: Path | None = None,
         log: Path | None = None) -> str:
    out = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd, check=False)
    if log is not None:
        with log.open("a") as fh:
            fh.write(f"$ {' '.join(args)}\n{out.stdout}\n{out.stderr}\n")
    if out.returncode != 0:
        raise AssertionError(f"{' '.join(args[:4])} ... exited {out.returncode}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return out.stdout


def _docker_answers() -> bool:
    return shutil.which("docker") is not None and subprocess.run(
        ["docker", "info"], capture_output=True, timeout=30, check=False).returncode == 0


def _compose() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True,
                                                 check=False).returncode == 0:
        return ["docker", "compose"]
    return None


@pytest.fixture(scope="module")
def dockerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A running Docker Engine: the one already running, or one this fixture starts (and stops)."""
    problem = None
    proc = None
    if shutil.which("docker") is None:
        problem = "docker is not installed: apt-get install -y docker.io docker-compose debootstrap"
    elif not _docker_answers():
        if shutil.which("dockerd") is None or os.geteuid() != 0:
            problem = "dockerd is not running and cannot be started here (needs root and docker.io)"
        else:
            log = tmp_path_factory.mktemp("dockerd") / "dockerd.log"
            with log.open("wb") as fh:
                proc = subprocess.Popen(["dockerd"], stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
            deadline = time.monotonic() + 60
            while not _docker_answers():
                if proc.poll() is not None or time.monotonic() > deadline:
                    problem = f"dockerd did not start: {log.read_text()[-2000:]}"
                    break
                time.sleep(1)
    if problem is None and _compose() is None:
        problem = "neither docker-compose nor the docker compose plugin is installed"
    if problem is None and not _image_exists(f"lockstep:{TAG}") and shutil.which("debootstrap") is None \
            and os.environ.get("LOCKSTEP_OFFLINE_IMAGES", "1") != "0":
        problem = "debootstrap is not installed: apt-get install -y debootstrap"
    try:
        if problem:
            if services_required():
                pytest.fail(f"LOCKSTEP_REQUIRE_SERVICES=1 but: {problem}", pytrace=False)
            pytest.skip(problem)
        yield
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def _image_exists(name: str) -> bool:
    return shutil.which("docker") is not None and subprocess.run(
        ["docker", "image", "inspect", name], capture_output=True, check=False).returncode == 0


def test_deployed_spec_is_the_flagship_with_buckets_and_queues() -> None:
    """docker/dags/fraud_features.yaml differs from dags/fraud_features.yaml only where a
    deployment must: storage, the model registry, airflow (queues), where the suites are mounted and governance
    (the quickstart is ungoverned; the deployment decides through Airflow only, with two
    approvals, 12 region operators and an admin), alerts (the deployment's alert sink) and
    the retry delay (a killed worker's task is retried within a minute)."""
    deployed = yaml.safe_load((REPO / "docker" / "dags" / "fraud_features.yaml").read_text())
    flagship = yaml.safe_load((REPO / "dags" / "fraud_features.yaml").read_text())
    governance = deployed.pop("governance")
    assert "governance" not in flagship and "alerts" not in flagship
    assert deployed.pop("alerts") == [{"kind": "webhook", "conn_id": "lockstep_alerts"}]
    assert governance["allow_local"] is False and governance["approvals"] == 2
    assert sorted(governance["roles"]) == sorted(["Admin", *(f"{r}-operator" for r in deployed["regions"])])
    for d in (deployed, flagship):
        d.pop("storage")
        d["validation"].pop("suites_dir", None)
    # the registry: the deployment's PostgreSQL and control bucket (the quickstart: SQLite under the control root)
    assert deployed["models"].pop("registry_uri").endswith("@${LOCKSTEP_POSTGRES_HOST:-postgres}:5432/mlflow")
    assert deployed["models"].pop("artifact_location") == "s3://${LOCKSTEP_BUCKET_PREFIX:-lockstep}-control/mlflow"
    assert deployed["airflow"].pop("retry_delay") == "20s"
    flagship["airflow"].pop("retry_delay")
    assert {k: v for k, v in deployed.pop("airflow").items() if k not in ("queues", "task_granularity")} == \
        flagship.pop("airflow")
    assert deployed == flagship


def test_deployed_model_dags_write_the_control_plane_from_the_control_queue() -> None:
    """docker/dags holds the release DAG and the scoring DAG built from the deployed spec: what
    writes the control plane (train, evaluate, promote, the scoring claim) runs on `control`,
    each region group's shadow and scoring tasks on its own queue (keys that only read it)."""
    from pipelines.airflow import build_release_dag, build_scoring_dag

    spec = REPO / "docker" / "dags" / "fraud_features.yaml"
    assert "pipelines.airflow import build_scoring_dag" in (REPO / "docker" / "dags" / "fraud_model_scoring.py").read_text()
    assert "build_release_dag" in (REPO / "docker" / "dags" / "fraud_features_release.py").read_text()
    scoring = build_scoring_dag(spec, dag_id="fraud_model_scoring")
    assert {t.task_id: t.queue for t in scoring.tasks} == {
        "release_in_force": "control", "score_regions_eu": "regions-eu", "score_regions_am": "regions-am",
        "score_regions_ap": "regions-ap", "scored": "control"}
    release = build_release_dag(spec)
    assert release.dag_id == "fraud_features_release"
    assert {t.task_id: t.queue for t in release.tasks} == {
        "plan": "control", "train": "control", "shadow_regions_eu": "regions-eu", "shadow_regions_am": "regions-am",
        "shadow_regions_ap": "regions-ap", "evaluate": "control", "promote": "control"}


def _compose_cmd(project: str, env_file: Path) -> list[str]:
    """README's compose command, with a project of the test's own (isolation) and its env file."""
    return [*(_compose() or []), "-p", project, "--env-file", str(env_file), "-f", str(REPO / "docker" / "compose.yaml")]


@pytest.mark.slow
@pytest.mark.docker
def test_compose_deployment_certifies_an_interval_and_runs_the_consumer(dockerd: None, tmp_path: Path) -> None:
    """README's Deploy section, verbatim (init-secrets, build-images, compose up), then issue 22's
    Done-when on one deployment and one interval:

    * the interval runs with ``eu-west``'s bucket unreachable (a deny policy on its group's key):
      a blocked decision naming the region, an alert at the alert sink;
    * access restored, the region is re-run through the Lockstep view's route; its worker is
      SIGKILLed mid-task (a crash: Docker restarts it) and the task is retried within 90 s;
      the interval certifies, no row duplicated, the consumer runs;
    * the view and ``lockstep status`` answer from the control plane; a region key cannot forge
      a certification and a bogus key gets nothing; task logs are in object storage; a Lockstep
      metric reached the StatsD receiver; ``--scale worker-eu=2`` works after the run;
    * issue 20's deployment: the scoring DAG refuses the interval (no release in force); a model
      trained on it (the control worker's CLI, handed the regions' read keys) is shadow-scored in
      every region on its queue and promoted by the release DAG; the interval's scoring run,
      cleared, scores every region with that one release (every score row carries it); the
      version is in the PostgreSQL database ``mlflow`` and its artifact in the control bucket.
      The DAGs folder is docker/dags with the promotion gate's window at one day (the test
      certifies one; the deployed spec wants five).
    """
    import boto3
    import httpx
    from botocore.exceptions import ClientError

    from pipelines.airflow.client import AirflowClient
    from pipelines.spec import load_spec
    from pipelines.storage import read_table

    log = tmp_path / "docker.log"
    secrets_dir = tmp_path / "secrets"
    host_env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "LOCKSTEP_", "S3_", "POSTGRES",
                                                                          "COMPOSE_", "AWS_"))}
    env = {**host_env, "LOCKSTEP_SECRETS": str(secrets_dir), "LOCKSTEP_IMAGE_TAG": TAG}
    t0 = time.monotonic()
    # README: docker/init-secrets.sh; make images (docker/build-images.sh)
    _run(str(REPO / "docker" / "init-secrets.sh"), env=env, log=log)
    _run(str(REPO / "docker" / "build-images.sh"), env=env, log=log, timeout=3600)
    built = time.monotonic() - t0
    port, s3_port, statsd_port = free_port(), free_port(), free_port()
    # docker/dags as they are, but for the promotion gate's evaluation window: the deployed spec
    # wants 5 certified days, the test certifies one (its DAGs folder: LOCKSTEP_DAGS, as .env may set)
    dags = tmp_path / "dags"
    shutil.copytree(REPO / "docker" / "dags", dags, ignore=shutil.ignore_patterns("__pycache__"))
    deployed = (dags / "fraud_features.yaml").read_text()
    gate = "  promotion:\n    window: 5 "
    assert deployed.count(gate) == 1
    (dags / "fraud_features.yaml").write_text(deployed.replace(gate, "  promotion:\n    window: 1 "))
    env_file = tmp_path / ".env"   # README: cp docker/.env.example docker/.env, then its ports
    env_file.write_text((REPO / "docker" / ".env.example").read_text() + "\n".join([
        # the api-server listens on the port it is published on: the view's re-run route calls
        # the api-server back at the address it was reached on
        "", f"AIRFLOW_PORT={port}", f"AIRFLOW_PUBLISH=127.0.0.1:{port}", f"S3_PUBLISH=127.0.0.1:{s3_port}",
        f"STATSD_PUBLISH=127.0.0.1:{statsd_port}", "WORKER_CONCURRENCY=1", f"LOCKSTEP_DAGS={dags}",
        # Docker's probes of the Airflow components every 5 minutes: nothing here waits on them (the
        # deployment's health is Airflow's own, below), and seven CLI starts a minute took ~10% of
        # the machine's CPU for the test's whole run
        "PROBE_INTERVAL=300s",
        # the DAG files never change after `up`: parsed once each (a new file is parsed at once),
        # not re-imported every 30 s beside the run
        "DAG_REPARSE_SECONDS=3600", ""]))
    project = f"lockstep-test-{uuid.uuid4().hex[:8]}"
    compose = _compose_cmd(project, env_file)
    password = (secrets_dir / "admin_password").read_text().strip()
    s3_url = f"http://127.0.0.1:{s3_port}"

    def keys(volume: str) -> tuple[str, str]:
        out = _run("docker", "run", "--rm", "--entrypoint", "cat", "-v", f"{project}_{volume}:/k:ro",
                   f"lockstep-s3:{TAG}", "/k/key_id", "/k/secret")
        key_id, secret = out.split()
        return key_id, secret

    def s3(service: str, key: tuple[str, str]) -> object:
        return boto3.client(service, endpoint_url=s3_url, region_name="us-east-1",
                            aws_access_key_id=key[0], aws_secret_access_key=key[1])

    def diagnose() -> str:
        ps = subprocess.run([*compose, "ps"], env=env, capture_output=True, text=True, check=False)
        logs = subprocess.run([*compose, "logs", "--tail", "30"], env=env, capture_output=True, text=True, check=False)
        return f"{ps.stdout}\n{logs.stdout[-15000:]}"

    def wait(what: str, probe, timeout: float = 600, poll: float = 2):  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = probe()
            except Exception:  # not up yet: connection refused, 404, a half-written answer
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}\n{diagnose()}")
            time.sleep(poll)

    try:
        # README: docker-compose -p lockstep -f docker/compose.yaml up -d
        _run(*compose, "up", "-d", env=env, log=log, timeout=900)
        # the region goes dark before the first interval runs (s3-init has finished when `up`
        # returns, the DAG is not parsed yet): a deny on its bucket for its group's key
        admin, eu = keys("s3-keys-admin"), keys("s3-keys-regions-eu")
        iam = s3("iam", admin)
        outage = {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "s3:*", "Resource": [
            f"arn:aws:s3:::lockstep-{DOWN}", f"arn:aws:s3:::lockstep-{DOWN}/*"]}]}
        iam.put_user_policy(UserName="lockstep-regions-eu", PolicyName="outage",  # type: ignore[attr-defined]
                            PolicyDocument=json.dumps(outage))
        client = AirflowClient(f"http://127.0.0.1:{port}", "admin", password)

        def healthy() -> bool:
            health = httpx.get(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=5).json()
            return all((health.get(c) or {}).get("status") == "healthy"
                       for c in ("metadatabase", "scheduler", "dag_processor", "triggerer"))

        wait("the deployment to be healthy", healthy)
        up = time.monotonic() - t0 - built

        # keys: S3 denies a bogus key and a region key writing the decision log
        with pytest.raises(ClientError) as denied:
            s3("s3", ("AKIABOGUSBOGUSBOGUS0", "bogus")).list_buckets()  # type: ignore[attr-defined]
        assert denied.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        forged = f"lake/{PIPELINE}/_lockstep/certifications/forged.json"
        with pytest.raises(ClientError) as denied:
            s3("s3", eu).put_object(Bucket="lockstep-control", Key=forged, Body=b"{}")  # type: ignore[attr-defined]
        assert denied.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403

        # the one interval: the run the scheduler makes of the latest day when the DAG appears
        # (unpaused, catchup off); with the region dark it fails, blocked, naming the region
        started = time.monotonic()
        run_id = wait("the scheduled run", lambda: client.dag_runs(PIPELINE, run_type="scheduled")[0]["dag_run_id"],
                      timeout=600)
        assert wait(f"run {run_id}", lambda: client.dag_run(PIPELINE, run_id)["state"] in ("success", "failed")
                    and client.dag_run(PIPELINE, run_id)["state"], timeout=1800) == "failed", \
            client.describe_run(PIPELINE, run_id)
        blocked_s = time.monotonic() - started
        decisions = client.lockstep("GET", f"/pipelines/{PIPELINE}/decisions")
        [blocked] = [d for d in decisions if d["status"] == "blocked"]
        interval = str(blocked["interval"])[:10]
        assert DOWN in json.dumps(blocked["reasons"]), blocked
        alerts = wait("the blocked alert", lambda: [a for a in httpx.get(
            f"http://127.0.0.1:{statsd_port}/alerts", timeout=5).json() if a.get("event") == "blocked"], timeout=120)
        assert alerts[0]["interval"] == interval and DOWN in json.dumps(alerts[0]), alerts

        # access restored: the region re-run from the view, its worker crashing mid-task
        iam.delete_user_policy(UserName="lockstep-regions-eu", PolicyName="outage")  # type: ignore[attr-defined]
        restarted = time.monotonic()
        rerun = client.rerun_region(PIPELINE, DOWN, interval)
        assert rerun["action"] == "cleared" and rerun["dag_run_id"] == run_id, rerun

        def running_eu() -> dict | None:  # type: ignore[type-arg]
            return next((t for t in client.task_instances(PIPELINE, run_id)
                         if t["queue"] == "regions-eu" and t["state"] == "running"), None)

        victim = wait(f"a running task of {DOWN}", running_eu, timeout=600, poll=0.3)
        worker = _run("docker", "ps", "-q", "--filter", f"label=com.docker.compose.project={project}",
                      "--filter", "label=com.docker.compose.service=worker-eu").split()[0]
        pid = _run("docker", "inspect", "-f", "{{.State.Pid}}", worker).strip()
        os.kill(int(pid), 9)   # a crash (`docker kill` is an operator's stop: Docker does not restart that)
        killed = time.monotonic()
        wait("worker-eu restarted by Docker", lambda: _run(
            "docker", "inspect", "-f", "{{.RestartCount}} {{.State.Running}}", worker).split() == ["1", "true"],
            timeout=90, poll=1)

        def retried() -> dict | None:  # type: ignore[type-arg]
            ti = next(t for t in client.task_instances(PIPELINE, run_id)
                      if (t["task_id"], t["map_index"]) == (victim["task_id"], victim["map_index"]))
            return ti if ti["try_number"] > victim["try_number"] and ti["state"] in ("running", "success") else None

        wait("the killed task's retry", retried, timeout=90, poll=1)
        retry_s = time.monotonic() - killed
        assert wait(f"run {run_id} again", lambda: client.dag_run(PIPELINE, run_id)["state"] in ("success", "failed")
                    and client.dag_run(PIPELINE, run_id)["state"], timeout=900) == "success", \
            client.describe_run(PIPELINE, run_id)
        recovered_s = time.monotonic() - restarted
        decisions = client.lockstep("GET", f"/pipelines/{PIPELINE}/decisions")
        assert [d["status"] for d in decisions if str(d["interval"])[:10] == interval][0] == "certified", decisions
        opts = {"AWS_ENDPOINT_URL": s3_url, "AWS_ALLOW_HTTP": "true", "AWS_REGION": "us-east-1",
                "AWS_ACCESS_KEY_ID": admin[0], "AWS_SECRET_ACCESS_KEY": admin[1]}
        spec = load_spec(REPO / "docker" / "dags" / "fraud_features.yaml")
        for layer, table in (("raw", "transactions"), ("features", "card_features")):
            rows = read_table(spec.table_uri(DOWN, layer, table), partition={"ds": interval},
                              storage_options=opts).select("txn_id").collect()
            assert rows.height == rows["txn_id"].n_unique() > 0, (layer, table, rows.height)

        # every step task of the run was forked warm on its worker (compose's celery_config_options:
        # the worker's main process imported Lockstep once); the task's own log line says which.
        # A task's log is read from the control bucket, where its worker uploads it as the task
        # ends: the run can be done before the last task's upload is (the api-server then asks the
        # worker's log server, which refuses it: a worker holds no API secret), so each log is
        # awaited until it holds the task's own lines
        def uploaded_log(ti: dict) -> str | None:  # type: ignore[type-arg]
            text = client.task_log(PIPELINE, run_id, ti["task_id"], ti["try_number"], ti["map_index"])
            return text if "task process" in text else None

        for ti in client.task_instances(PIPELINE, run_id):
            if ti["state"] == "success" and (ti["task_id"] in ("reconcile", "gate") or ti["queue"] == "regions-eu"):
                text = wait(f"{ti['task_id']}[{ti['map_index']}]'s log in the control bucket",
                            lambda ti=ti: uploaded_log(ti), timeout=120, poll=2)
                assert "task process warm" in text and "task process cold" not in text, (ti["task_id"], text[-2000:])

        # the view and `lockstep status` from the control plane
        token = client.token()
        for path in ("/lockstep/", f"/lockstep/pipelines/{PIPELINE}"):
            page = httpx.get(f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=60)
            assert page.status_code == 200, (path, page.text[:500])
        control = _run("docker", "ps", "-q", "--filter", f"label=com.docker.compose.project={project}",
                       "--filter", "label=com.docker.compose.service=worker-control").split()[0]
        status = json.loads(_run("docker", "exec", control, "lockstep", "status", "--json",
                                 "/opt/airflow/dags/fraud_features.yaml"))
        assert interval in json.dumps(status), status

        # task logs in object storage, under each queue's prefix; a Lockstep metric at the receiver
        listed = s3("s3", admin).list_objects_v2(Bucket="lockstep-control",  # type: ignore[attr-defined]
                                                 Prefix=f"logs/regions-eu/dag_id={PIPELINE}/run_id={run_id}/")
        assert listed.get("KeyCount", 0) > 0, listed
        metrics = httpx.get(f"http://127.0.0.1:{statsd_port}/metrics", timeout=10).text
        assert f"airflow_lockstep_{PIPELINE}_gate_certified_total" in metrics, metrics[:3000]

        # the consumer (the scoring DAG) ran on the certified interval: no release in force yet, it says so
        def consumed() -> dict | None:  # type: ignore[type-arg]
            for r in client.dag_runs("fraud_model_scoring", run_type="asset_triggered"):
                events = client.upstream_asset_events("fraud_model_scoring", r["dag_run_id"])
                if any(e.get("source_run_id") == run_id for e in events):
                    return r if r["state"] in ("success", "failed") else None
            return None

        consumer = wait("the consumer's run", consumed, timeout=600)
        scoring_run = consumer["dag_run_id"]
        assert consumer["state"] == "failed", client.describe_run("fraud_model_scoring", scoring_run)
        assert f"no release in force for {interval}" in client.task_log("fraud_model_scoring", scoring_run,
                                                                       "release_in_force")

        # the model: trained where every region's certified features may be read (the control
        # worker's CLI, handed the region groups' keys for it: its own reads no regional bucket),
        # on the one certified day; then the release DAG shadow-scores it in every region on the
        # region's queue, evaluates and promotes it on the control queue, in force from that day
        model_started = time.monotonic()
        readers: list[str] = []
        for group in ("eu", "am", "ap"):
            key_id, secret = keys(f"s3-keys-regions-{group}")
            readers += ["-e", f"LOCKSTEP_{group.upper()}_KEY_ID={key_id}", "-e", f"LOCKSTEP_{group.upper()}_SECRET={secret}"]
        # the spec's training window (3 days) ends with the one certified day: the two before it excluded
        window = [(date.fromisoformat(interval) - timedelta(days=d)).isoformat() for d in (2, 1)]
        trained = json.loads(_run("docker", "exec", *readers, control, "lockstep", "release", "train",  # (keys: no log)
                                  "/opt/airflow/dags/fraud_features.yaml", "--until", interval,
                                  *(a for day in window for a in ("--exclude", day)), "--json"))
        release_run = client.trigger("fraud_features_release", conf={
            "version": trained["version"], "interval": interval, "effective_from": interval, "why": "docker test"})
        assert wait(f"release run {release_run}", lambda: client.dag_run("fraud_features_release", release_run)[
            "state"] in ("success", "failed") and client.dag_run("fraud_features_release", release_run)["state"],
            timeout=900) == "success", client.describe_run("fraud_features_release", release_run)
        released = client.xcom("fraud_features_release", release_run, "promote")
        assert released["model_version"] == trained["version"] and released["effective_from"] == interval, released
        shadows = [t for t in client.task_instances("fraud_features_release", release_run)
                   if t["task_id"].startswith("shadow_")]
        assert len(shadows) == len(spec.regions) and {t["queue"] for t in shadows} == {
            "regions-eu", "regions-am", "regions-ap"}, shadows

        # the interval scored again (its failed run cleared): one release claimed on the control
        # queue, every region scored with it on its own queue, every score row carrying it
        client.clear_tasks("fraud_model_scoring", scoring_run, ["release_in_force"])
        assert wait(f"scoring run {scoring_run} again", lambda: client.dag_run(
            "fraud_model_scoring", scoring_run)["state"] in ("success", "failed") and client.dag_run(
            "fraud_model_scoring", scoring_run)["state"], timeout=900) == "success", \
            client.describe_run("fraud_model_scoring", scoring_run)
        scored = client.xcom("fraud_model_scoring", scoring_run, "scored")
        assert scored["interval"] == interval and scored["release_id"] == released["release_id"], scored
        assert set(scored["regions"]) == set(spec.regions) and scored["rows"] > 0
        for region in spec.regions:
            rows = read_table(spec.table_uri(region, "scores", "fraud_model"), partition={"ds": interval},
                              storage_options=opts).select("release_id", "model_version").collect()
            assert rows.height > 0 and rows.unique().rows() == [(released["release_id"], trained["version"])], region
        # the version in the deployment's PostgreSQL (database mlflow), its artifact in the control bucket
        postgres = _run("docker", "ps", "-q", "--filter", f"label=com.docker.compose.project={project}",
                        "--filter", "label=com.docker.compose.service=postgres").split()[0]
        versions = _run("docker", "exec", postgres, "psql", "-U", "airflow", "-d", "mlflow", "-tAc",
                        "SELECT name, version FROM model_versions").split()
        assert versions == [f"fraud_model|{trained['version']}"], versions
        artifacts = s3("s3", admin).list_objects_v2(Bucket="lockstep-control", Prefix="mlflow/")  # type: ignore[attr-defined]
        assert any(o["Key"].endswith("/model.pkl") for o in artifacts.get("Contents", [])), artifacts
        model_s = time.monotonic() - model_started

        # scale out after the run (s3-init runs again and keeps its keys)
        _run(*compose, "up", "-d", "--scale", "worker-eu=2", env=env, log=log, timeout=600)
        workers = _run("docker", "ps", "-q", "--filter", f"label=com.docker.compose.project={project}",
                       "--filter", "label=com.docker.compose.service=worker-eu").split()
        assert len(workers) == 2, workers
        print(f"\nimages {built:.0f} s; up {up:.0f} s; interval with {DOWN} down blocked in {blocked_s:.0f} s; "
              f"re-run certified in {recovered_s:.0f} s (killed task retried {retry_s:.0f} s after the crash); "
              f"model trained, released and the interval scored in {model_s:.0f} s; "
              f"total {time.monotonic() - t0:.0f} s")
    finally:
        subprocess.run([*compose, "down", "-v", "--remove-orphans"], env=env, capture_output=True, timeout=600,
                       check=False)
