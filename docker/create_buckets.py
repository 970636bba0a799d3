"""Provision the S3 stand-in for a Lockstep spec (compose's ``s3-init``): the buckets its
storage names (every region's and the control root's) and one IAM user per role, holding
the policy :func:`pipelines.control.policies.s3_policies` derives from the spec::

    python /opt/lockstep/docker/create_buckets.py SPEC KEYS_DIR

Roles (each a folder of ``KEYS_DIR`` that compose mounts into that role's containers only):

* ``admin``: everything; only this script holds it. On a fresh server it is created with
  the server's unauthenticated calls (moto's ``INITIAL_NO_AUTH_ACTION_COUNT=3``), then
  every later call is signed and checked against IAM.
* ``control``: the control bucket (worker-control, the api-server).
* one per region queue of ``airflow.queues`` (``regions-eu``, …): the policies of that
  queue's regions merged (their buckets, their evidence prefixes in the control bucket, the
  decision log read only), plus the task logs of that queue (``<control bucket>/logs/<queue>/``).

Each role folder gets ``key_id``, ``secret`` and ``credentials`` (the AWS shared
credentials file: Airflow's remote logging reads it). Idempotent: buckets and keys that
exist are kept, policies are put again (a changed spec changes them).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from pipelines.airflow.queues import region_groups
from pipelines.control.policies import s3_policies
from pipelines.errors import SpecError
from pipelines.spec import load_spec

LOGS_PREFIX = "logs"  # task logs (Airflow remote logging) under the control bucket


def _client(service: str, endpoint: str, region: str, key_id: str, secret: str) -> Any:
    return boto3.client(service, endpoint_url=endpoint, region_name=region,
                        aws_access_key_id=key_id, aws_secret_access_key=secret)


def _write_keys(folder: Path, key_id: str, secret: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, value in (("key_id", key_id), ("secret", secret),
                        ("credentials", f"[default]\naws_access_key_id = {key_id}\naws_secret_access_key = {secret}\n")):
        path = folder / name
        path.write_text(value if name == "credentials" else value + "\n")
        path.chmod(0o640)  # the airflow user (uid 50000, gid 0) of every Lockstep container reads it


def _read_keys(folder: Path) -> tuple[str, str] | None:
    try:
        return (folder / "key_id").read_text().strip(), (folder / "secret").read_text().strip()
    except FileNotFoundError:
        return None


def _user(iam: Any, folder: Path, name: str, policy: dict[str, Any]) -> None:
    try:
        iam.create_user(UserName=name)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "EntityAlreadyExists":
            raise
    iam.put_user_policy(UserName=name, PolicyName=f"{name}-policy", PolicyDocument=json.dumps(policy))
    kept = _read_keys(folder)
    issued = {k["AccessKeyId"] for k in iam.list_access_keys(UserName=name)["AccessKeyMetadata"]}
    if kept is None or kept[0] not in issued:
        key = iam.create_access_key(UserName=name)["AccessKey"]
        _write_keys(folder, key["AccessKeyId"], key["SecretAccessKey"])
        print(f"key for {name} written to {folder}")
    else:
        print(f"key for {name} kept")


def main(spec_path: str, keys_dir: str) -> int:
    import os

    endpoint = os.environ["LOCKSTEP_S3_ENDPOINT"]
    region = os.environ.get("LOCKSTEP_S3_REGION") or "us-east-1"
    keys = Path(keys_dir)
    spec = load_spec(spec_path)

    admin_dir = keys / "admin"
    admin = _read_keys(admin_dir)
    if admin is None:  # a fresh server: its unauthenticated calls create the admin
        anon = _client("iam", endpoint, region, "bootstrap", "bootstrap")
        anon.create_user(UserName="lockstep-admin")
        anon.put_user_policy(UserName="lockstep-admin", PolicyName="admin", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        key = anon.create_access_key(UserName="lockstep-admin")["AccessKey"]
        _write_keys(admin_dir, key["AccessKeyId"], key["SecretAccessKey"])
        admin = (key["AccessKeyId"], key["SecretAccessKey"])
    s3 = _client("s3", endpoint, region, *admin)
    iam = _client("iam", endpoint, region, *admin)
    try:
        iam.get_user(UserName="lockstep-admin")
    except ClientError as exc:
        print(f"s3-init: the S3 server refuses the admin key kept in {admin_dir} "
              f"({exc.response['Error']['Code']}): it lost its state (restarted?); "
              "recreate the deployment with `down -v` then `up -d`", file=sys.stderr)
        return 1

    roots = [spec.region_root(r) for r in spec.regions] + [spec.control_root()]
    for bucket in sorted({urlparse(root).netloc for root in roots if root.startswith("s3://")}):
        try:
            s3.create_bucket(Bucket=bucket)  # (us-east-1 answers 200 for a bucket you own already)
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise
        print(f"bucket {bucket} ready")

    policies = s3_policies(spec)
    ctl_bucket = urlparse(spec.control_root()).netloc
    _user(iam, keys / "control", "lockstep-control", policies["control"])
    for group in region_groups(spec):
        queue = group.queue or "default"
        statements = [s for r in group.regions for s in policies[f"region:{r}"]["Statement"]]
        statements.append({"Sid": "TaskLogs", "Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"],
                           "Resource": [f"arn:aws:s3:::{ctl_bucket}/{LOGS_PREFIX}/{queue}/*"]})
        _user(iam, keys / queue, f"lockstep-{queue}", {"Version": "2012-10-17", "Statement": statements})
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    try:
        sys.exit(main(sys.argv[1], sys.argv[2]))
    except SpecError as exc:
        print(f"s3-init: {exc}", file=sys.stderr)
        sys.exit(1)
    except (ClientError, BotoCoreError, OSError, KeyError) as exc:  # refused, unreachable, a variable unset
        print(f"s3-init: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
