"""docker/ for real: build the image, ``compose up`` the whole deployment (PostgreSQL, Redis,
the S3 stand-in with its buckets, airflow-init, api-server, scheduler, dag-processor,
triggerer, a Celery worker per region group and one for the control plane), trigger a
12-region interval over REST, see it certified and the consumer run, ``compose down -v``.

No container registry is reachable on the test machines, so the images the compose file
takes from Docker Hub by default are built here from Debian's packages: a ``debootstrap``
root file system imported with ``docker import``, then ``docker/test/*.Dockerfile`` on top
(the official images' contracts); users keep the official images. pip inside the build
reaches PyPI through the host's network and CA bundle (``$PIP_CERT``).

Needs dockerd (started here when it is installed but not running, and stopped again),
docker-compose (v1) or the compose plugin, and debootstrap for the first build. With
``LOCKSTEP_REQUIRE_SERVICES=1`` anything missing fails instead of skipping.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from pipelines.airflow.embedded import free_port
from tests.conftest import REPO, services_required

ROOTFS_IMAGE = "lockstep-test/debian-rootfs:bookworm"
ROOTFS_CACHE = Path(os.environ.get("LOCKSTEP_ROOTFS_CACHE", "/var/tmp/lockstep-rootfs/bookworm"))
DEBIAN_MIRROR = os.environ.get("LOCKSTEP_DEBIAN_MIRROR", "http://deb.debian.org/debian")
ROOTFS_PACKAGES = "python3,python3-venv,ca-certificates,postgresql,redis-server,procps"
# Fixed image names (the layer cache makes a rebuild cheap; one test builds them, whichever
# xdist worker runs it); containers, networks and volumes are the compose project's, named
# per run (lockstep-test-<uuid>), so two runs on one dockerd do not meet.
TAG = "test"


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
    if problem is None and not _image_exists(ROOTFS_IMAGE) and not ROOTFS_CACHE.is_dir() \
            and shutil.which("debootstrap") is None:
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


def _build_context(dest: Path) -> Path:
    """What the image needs (the repo's root .dockerignore keeps the same set), plus the
    host's CA bundle as docker/pip-ca.pem when pip needs one."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pem")
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("pyproject.toml", "README.md", "constraints.txt"):
        shutil.copy2(REPO / name, dest / name)
    shutil.copytree(REPO / "pipelines", dest / "pipelines", ignore=ignore)
    shutil.copytree(REPO / "docker", dest / "docker", ignore=ignore)
    ca = os.environ.get("PIP_CERT") or os.environ.get("REQUESTS_CA_BUNDLE")
    if ca and Path(ca).is_file():
        shutil.copy2(ca, dest / "docker" / "pip-ca.pem")
    return dest


def _build_images(workdir: Path, log: Path) -> dict[str, str]:
    if not _image_exists(ROOTFS_IMAGE):
        if not ROOTFS_CACHE.is_dir():
            tmp = ROOTFS_CACHE.with_name(ROOTFS_CACHE.name + f".tmp{os.getpid()}")
            _run("debootstrap", "--variant=minbase", f"--include={ROOTFS_PACKAGES}", "bookworm", str(tmp),
                 DEBIAN_MIRROR, log=log)
            tmp.rename(ROOTFS_CACHE)
        tar = subprocess.Popen(["tar", "-C", str(ROOTFS_CACHE), "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(["docker", "import", "-", ROOTFS_IMAGE], stdin=tar.stdout, check=True, capture_output=True)
        tar.wait()
    ctx = _build_context(workdir / "context")
    images = {"BASE_IMAGE": f"lockstep-test/base:{TAG}", "POSTGRES_IMAGE": f"lockstep-test/postgres:{TAG}",
              "REDIS_IMAGE": f"lockstep-test/redis:{TAG}", "LOCKSTEP_IMAGE": f"lockstep:{TAG}",
              "LOCKSTEP_S3_IMAGE": f"lockstep-s3:{TAG}"}
    for key, dockerfile in (("BASE_IMAGE", "base"), ("POSTGRES_IMAGE", "postgres"), ("REDIS_IMAGE", "redis")):
        _run("docker", "build", "-f", str(ctx / "docker" / "test" / f"{dockerfile}.Dockerfile"),
             "--build-arg", f"ROOTFS_IMAGE={ROOTFS_IMAGE}", "-t", images[key], str(ctx), log=log)
    for key, target in (("LOCKSTEP_S3_IMAGE", "s3"), ("LOCKSTEP_IMAGE", "lockstep")):
        _run("docker", "build", "--network", "host", "-f", str(ctx / "docker" / "Dockerfile"), "--target", target,
             "--build-arg", f"BASE_IMAGE={images['BASE_IMAGE']}", "-t", images[key], str(ctx), log=log)
    return images


def test_deployed_spec_is_the_flagship_with_buckets_and_queues() -> None:
    """docker/dags/fraud_features.yaml differs from dags/fraud_features.yaml only where a
    deployment must: storage, airflow (queues), where the suites are mounted and governance
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
    assert deployed["airflow"].pop("retry_delay") == "20s"
    flagship["airflow"].pop("retry_delay")
    assert {k: v for k, v in deployed.pop("airflow").items() if k not in ("queues", "task_granularity")} == \
        flagship.pop("airflow")
    assert deployed == flagship


@pytest.mark.slow
@pytest.mark.docker
def test_compose_deployment_certifies_an_interval_and_runs_the_consumer(dockerd: None, tmp_path: Path) -> None:
    from pipelines.airflow.client import AirflowClient

    log = tmp_path / "docker.log"
    t0 = time.monotonic()
    images = _build_images(tmp_path, log)
    built = time.monotonic() - t0
    port = free_port()
    password = secrets.token_urlsafe(12)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "LOCKSTEP_", "S3_", "POSTGRES"))},
        **images,
        "AIRFLOW_ADMIN_PASSWORD": password,
        "AIRFLOW_FERNET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "AIRFLOW_JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW_API_SECRET_KEY": secrets.token_urlsafe(32),
        "LOCKSTEP_HASH_KEY": secrets.token_hex(32),
        "POSTGRES_PASSWORD": secrets.token_urlsafe(12),
        "AIRFLOW_PUBLISH": f"127.0.0.1:{port}",
        "WORKER_CONCURRENCY": "1",
    }
    compose = [*(_compose() or []), "-p", f"lockstep-test-{uuid.uuid4().hex[:8]}", "-f", str(REPO / "docker" / "compose.yaml")]
    try:
        _run(*compose, "up", "-d", env=env, log=log, timeout=900)
        client = AirflowClient(f"http://127.0.0.1:{port}", "admin", password)

        def wait(what: str, probe, timeout: float = 600):  # type: ignore[no-untyped-def]
            deadline = time.monotonic() + timeout
            while True:
                try:
                    value = probe()
                except Exception:  # not up yet: connection refused, 404, a half-written answer
                    value = None
                if value:
                    return value
                if time.monotonic() > deadline:
                    ps = subprocess.run([*compose, "ps"], env=env, capture_output=True, text=True, check=False)
                    logs = subprocess.run([*compose, "logs", "--tail", "40"], env=env, capture_output=True,
                                          text=True, check=False)
                    raise AssertionError(f"timed out waiting for {what}\n{ps.stdout}\n{logs.stdout[-12000:]}")
                time.sleep(3)

        def healthy() -> bool:
            import httpx

            health = httpx.get(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=5).json()
            return all((health.get(c) or {}).get("status") == "healthy"
                       for c in ("metadatabase", "scheduler", "dag_processor", "triggerer"))

        wait("the deployment to be healthy", healthy, timeout=600)
        wait("the DAGs to be parsed", lambda: client.api("GET", "/dags/fraud_features")
             and client.api("GET", "/dags/fraud_model_scoring"), timeout=300)
        started = time.monotonic()
        # a manual run at D processes the daily interval that ended at D: 2026-01-01
        run_id = client.api("POST", "/dags/fraud_features/dagRuns",
                            {"logical_date": "2026-01-02T00:00:00+00:00", "conf": {}})["dag_run_id"]

        def finished() -> str | None:
            state = client.api("GET", f"/dags/fraud_features/dagRuns/{run_id}")["state"]
            return state if state in ("success", "failed") else None

        state = wait(f"run {run_id}", finished, timeout=1800)
        interval_s = time.monotonic() - started
        tis = client.api("GET", f"/dags/fraud_features/dagRuns/{run_id}/taskInstances")["task_instances"]
        assert state == "success", [(t["task_id"], t["map_index"], t["state"]) for t in tis]
        assert {t["queue"] for t in tis} == {"regions-eu", "regions-am", "regions-ap", "control"}
        events = client.api("GET", "/assets/events", params={"source_dag_id": "fraud_features",
                                                              "source_run_id": run_id})["asset_events"]
        assert len(events) == 1 and events[0]["extra"]["interval"] == "2026-01-01", events

        def consumed() -> dict | None:  # type: ignore[type-arg]
            # the consumer run our run's Asset event triggered (a scheduled run of the latest
            # day, made when the DAG appeared unpaused, may have certified and triggered one too)
            runs = client.api("GET", "/dags/fraud_model_scoring/dagRuns",
                              params={"run_type": "asset_triggered"})["dag_runs"]
            for r in runs:
                events = client.api("GET", f"/dags/fraud_model_scoring/dagRuns/{r['dag_run_id']}/upstreamAssetEvents")
                if any(e.get("source_run_id") == run_id for e in events["asset_events"]):
                    return r if r["state"] in ("success", "failed") else None
            return None

        run = wait("the consumer's run", consumed, timeout=900)
        assert run["state"] == "success", run
        print(f"\nimages built in {built:.0f} s; 12-region interval certified in {interval_s:.0f} s")
    finally:
        subprocess.run([*compose, "down", "-v", "--remove-orphans"], env=env, capture_output=True, timeout=600,
                       check=False)
