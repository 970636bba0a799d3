"""docker/create_buckets.py (compose's ``s3-init``) against moto's server with IAM enforced, as
compose runs it: a fresh server's three unauthenticated calls make the admin, then the
buckets and one key per role holding the policy ``s3_policies`` derives from the deployed
spec. Each key is tried for what its role may and may not do; a second run keeps the keys."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from pipelines.airflow.embedded import free_port
from tests.conftest import REPO

pytestmark = pytest.mark.skipif(importlib.util.find_spec("moto") is None or importlib.util.find_spec("boto3") is None,
                                reason="moto's server is not installed: pip install -e '.[dev]'")

SPEC = REPO / "docker" / "dags" / "fraud_features.yaml"
EVIDENCE = "lake/fraud_features/_lockstep/regions/{region}/evidence/x.json"
ARTIFACT = "mlflow/1/models/m-1/artifacts/model.pkl"  # under the spec's models.artifact_location


def _init(endpoint: str, keys: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LOCKSTEP_"))}
    env.update({"LOCKSTEP_S3_ENDPOINT": endpoint, "PYTHONPATH": str(REPO)})
    return subprocess.run([sys.executable, str(REPO / "docker" / "create_buckets.py"), str(SPEC), str(keys)],
                          env=env, capture_output=True, text=True, timeout=120, check=False)


def test_s3_init_makes_buckets_and_a_key_per_role_that_iam_holds_to_its_policy(tmp_path: Path) -> None:
    import boto3
    from botocore.exceptions import ClientError

    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["INITIAL_NO_AUTH_ACTION_COUNT"] = "3"
    with (tmp_path / "moto.log").open("wb") as log:
        server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], env=env,
                                  stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{endpoint}/moto-api/", timeout=2).status_code == 200:  # not an AWS action
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "moto.log").read_text()[-2000:]
            time.sleep(0.2)
        keys = tmp_path / "keys"
        first = _init(endpoint, keys)
        assert first.returncode == 0, first.stderr
        assert sorted(p.name for p in keys.iterdir()) == ["admin", "control", "regions-am", "regions-ap", "regions-eu"]

        def client(role: str | None, key: tuple[str, str] | None = None):  # type: ignore[no-untyped-def]
            if key is None:
                assert role is not None
                key = ((keys / role / "key_id").read_text().strip(), (keys / role / "secret").read_text().strip())
            return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                                aws_access_key_id=key[0], aws_secret_access_key=key[1])

        def status(role: str | None, bucket: str, key: str, creds: tuple[str, str] | None = None) -> int:
            try:
                client(role, creds).put_object(Bucket=bucket, Key=key, Body=b"{}")
                return 200
            except ClientError as exc:
                return int(exc.response["ResponseMetadata"]["HTTPStatusCode"])

        buckets = {b["Name"] for b in client("admin").list_buckets()["Buckets"]}
        assert {"lockstep-control", "lockstep-eu-west", "lockstep-us-east", "lockstep-ap-south"} <= buckets
        assert len(buckets) == 13
        # a region group: its regions' buckets and evidence prefixes, its task logs; nothing else
        assert status("regions-eu", "lockstep-eu-west", "lake/x") == 200
        assert status("regions-eu", "lockstep-control", EVIDENCE.format(region="eu-north")) == 200
        assert status("regions-eu", "lockstep-control", "logs/regions-eu/dag_id=x/attempt=1.log") == 200
        assert status("regions-eu", "lockstep-us-east", "lake/x") == 403
        assert status("regions-eu", "lockstep-control", EVIDENCE.format(region="us-east")) == 403
        assert status("regions-eu", "lockstep-control", "lake/fraud_features/_lockstep/certifications/x") == 403
        assert status("regions-eu", "lockstep-control", "logs/regions-am/dag_id=x/attempt=1.log") == 403
        assert status("regions-am", "lockstep-sa-east", "lake/x") == 200  # sa-east is on the am queue
        # the model: a region may not write the release log, the shadow evaluations or the artifacts
        for key in ("lake/fraud_features/_lockstep/releases/x", "lake/fraud_features/_lockstep/release_evaluations/x",
                    ARTIFACT):
            assert status("regions-eu", "lockstep-control", key) == 403, key
        assert status("control", "lockstep-control", ARTIFACT) == 200  # the control worker registers models
        # ... and reads what it scores with: the release log and the model's artifacts (listing them too)
        for key in ("lake/fraud_features/_lockstep/releases/x", ARTIFACT):
            client("admin").put_object(Bucket="lockstep-control", Key=key, Body=b"{}")
            assert client("regions-ap").get_object(Bucket="lockstep-control", Key=key)["Body"].read() == b"{}", key
        listed = client("regions-ap").list_objects_v2(Bucket="lockstep-control", Prefix="mlflow/")
        assert [o["Key"] for o in listed["Contents"]] == [ARTIFACT]
        client("admin").put_object(Bucket="lockstep-control", Key="logs/regions-eu/x", Body=b"{}")
        with pytest.raises(ClientError) as denied:  # nothing else of the control bucket is theirs to read
            client("regions-ap").get_object(Bucket="lockstep-control", Key="logs/regions-eu/x")
        assert denied.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        # the control plane: the control bucket, no region's
        assert status("control", "lockstep-control", "lake/fraud_features/_lockstep/certifications/x") == 200
        assert status("control", "lockstep-eu-west", "lake/x") == 403
        # a key the server never issued
        assert status(None, "lockstep-control", "x", ("AKIAIOSFODNN7EXAMPLE", "bogus")) == 403

        kept = {r: (keys / r / "key_id").read_text() for r in ("admin", "control", "regions-eu")}
        second = _init(endpoint, keys)
        assert second.returncode == 0, second.stderr
        assert {r: (keys / r / "key_id").read_text() for r in kept} == kept
        assert "key for lockstep-regions-eu kept" in second.stdout and "bucket lockstep-control ready" in second.stdout
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
