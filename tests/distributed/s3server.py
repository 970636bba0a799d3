"""An S3-compatible server on loopback for tests: moto's server mode, with IAM enforced.

Every request after the first three is authenticated and authorised by moto's IAM
evaluation: the harness creates an admin with those three, then, as the admin, one bucket
per name and one IAM user per grant: an IAM policy document (what
:func:`pipelines.control.policies.s3_policies` derives from a spec, per role), or a list of
what it may use (:func:`grant_policy`: ``s3:*`` on a whole bucket, ``"lake-ctl"``, or on a
prefix of one, ``"lake-ctl/p/_lockstep/regions/eu/*"``, plus listing the bucket, as on AWS
where ``s3:ListBucket`` is a bucket action). So a credential used outside its grant gets
``403 AccessDenied``, as on AWS, and so does a key the server never issued. Every request
is logged (method, path, the signing key id, the status) to ``<workdir>/requests.jsonl`` by
:mod:`tests.distributed.moto_logged`: :meth:`MotoS3.requests` reads it back, so a test can
show which credential touched which bucket::

    with MotoS3(tmp_path, buckets=["lake-eu", "lake-ctl"],
                grants={"eu": ["lake-eu", region_prefix("lake-ctl", "eu")], "control": ["lake-ctl"]}) as s3:
        s3.options("eu")   # deltalake storage options holding the "eu" user's keys

The server is stopped (its process group) when the ``with`` block ends.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.airflow.embedded import free_port

REGION = "us-east-1"


def region_prefix(bucket: str, region: str, base: str = "lake") -> str:
    """The grant of a region's prefix of the control plane in ``bucket`` (every pipeline's):
    ``<bucket>/<base>/*/_lockstep/regions/<region>/*``, where it publishes its evidence."""
    return f"{bucket}/{base}/*/_lockstep/regions/{region}/*"


def merge_policies(*docs: Mapping[str, Any]) -> dict[str, Any]:
    """One policy document holding every statement of ``docs`` (a worker serving several regions)."""
    return {"Version": "2012-10-17", "Statement": [st for d in docs for st in d["Statement"]]}


def grant_policy(grant: Iterable[str]) -> list[dict[str, Any]]:
    """IAM statements of a grant: ``s3:*`` on each whole bucket it names; on a prefix
    (``bucket/prefix*``), ``s3:*`` on the objects under it and listing the bucket."""
    buckets = [g for g in grant if "/" not in g]
    prefixes = [g for g in grant if "/" in g]
    statements: list[dict[str, Any]] = []
    if buckets:
        statements.append({"Effect": "Allow", "Action": "s3:*",
                           "Resource": [arn for b in buckets for arn in (f"arn:aws:s3:::{b}", f"arn:aws:s3:::{b}/*")]})
    if prefixes:
        statements.append({"Effect": "Allow", "Action": "s3:*", "Resource": [f"arn:aws:s3:::{p}" for p in prefixes]})
        statements.append({"Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
                           "Resource": sorted({f"arn:aws:s3:::{p.split('/', 1)[0]}" for p in prefixes})})
    return statements


@dataclass(frozen=True)
class Credentials:
    key_id: str
    secret: str


@dataclass(frozen=True)
class Request:
    method: str
    bucket: str
    key: str
    key_id: str | None  # the access key that signed it (None: unsigned)
    status: int = 0
    bytes_in: int = 0  # request body (an upload)
    bytes_out: int = 0  # response body (a download)


class MotoS3:
    """One moto server with buckets and per-grant IAM users (see the module docstring)."""

    def __init__(
        self,
        workdir: Path,
        *,
        buckets: Iterable[str],
        grants: Mapping[str, Iterable[str] | Mapping[str, Any]],
        record: bool = True,
        port: int | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.workdir = Path(workdir)
        self.buckets = list(buckets)
        self.grants = {name: g if isinstance(g, Mapping) else list(g) for name, g in grants.items()}
        self.record = record
        self.host = host
        self.port = port or free_port(host)
        self.endpoint = f"http://{host}:{self.port}"
        self.credentials: dict[str, Credentials] = {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.workdir / "moto.log"
        self.recording = self.workdir / "requests.jsonl"

    # -- lifecycle ---------------------------------------------------------------------

    def __enter__(self) -> MotoS3:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = "3"
        log = self.log_path.open("ab")
        repo = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = repo + os.pathsep + env.get("PYTHONPATH", "")
        request_log = str(self.recording) if self.record else os.devnull
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.distributed.moto_logged", self.host, str(self.port), request_log],
                env=env, cwd=self.workdir,
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            log.close()
        try:
            self._wait_up()
            self._provision()
        except BaseException:
            self.stop()
            raise

    def _wait_up(self, timeout: float = 60.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto_server exited {self.proc.returncode}: {self.log_path.read_text()[-2000:]}")
            try:
                # /moto-api/ is not an AWS action: it does not use up the unauthenticated calls
                if httpx.get(f"{self.endpoint}/moto-api/data.json", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"moto_server not up after {timeout:.0f}s")

    def client(self, service: str, creds: Credentials | None = None) -> Any:
        import boto3

        creds = creds or self.credentials["admin"]
        return boto3.client(service, endpoint_url=self.endpoint, region_name=REGION,
                            aws_access_key_id=creds.key_id, aws_secret_access_key=creds.secret)

    def _user(self, iam: Any, name: str, statements: list[dict[str, Any]]) -> Credentials:
        iam.create_user(UserName=name)
        iam.put_user_policy(UserName=name, PolicyName=f"{name}-policy",
                            PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": statements}))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return Credentials(key["AccessKeyId"], key["SecretAccessKey"])

    def _provision(self) -> None:
        # the three unauthenticated calls: an admin who may do anything
        anon = Credentials("bootstrap", "bootstrap")
        self.credentials["admin"] = self._user(
            self.client("iam", anon), "admin", [{"Effect": "Allow", "Action": "*", "Resource": "*"}])
        s3, iam = self.client("s3"), self.client("iam")
        for bucket in self.buckets:
            s3.create_bucket(Bucket=bucket)
        for name, grant in self.grants.items():
            statements = list(grant["Statement"]) if isinstance(grant, Mapping) else grant_policy(grant)
            self.credentials[name] = self._user(iam, name, statements)
        if self.record:  # from here on: only what the code under test does
            self.recording.write_text("")

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None

    # -- for the code under test -------------------------------------------------------

    def options(self, grant: str | None = None) -> dict[str, str]:
        """deltalake storage options for this server (with ``grant``'s keys when given)."""
        opts = {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ALLOW_HTTP": "true", "AWS_REGION": REGION}
        if grant is not None:
            c = self.credentials[grant]
            opts.update({"AWS_ACCESS_KEY_ID": c.key_id, "AWS_SECRET_ACCESS_KEY": c.secret})
        return opts

    def key_owner(self) -> dict[str, str]:
        """access key id -> grant name"""
        return {c.key_id: name for name, c in self.credentials.items()}

    # -- what happened -----------------------------------------------------------------

    def requests(self) -> list[Request]:
        """Every S3 request since provisioning (or since the log was emptied)."""
        out = []
        if not self.recording.exists():
            return out
        for line in self.recording.read_text().splitlines():
            entry = json.loads(line)
            bucket, _, key = entry["path"].lstrip("/").partition("/")
            out.append(Request(entry["method"], bucket, key, entry["key_id"], entry.get("status", 0),
                               entry.get("bytes_in", 0), entry.get("bytes_out", 0)))
        return out

    def denied(self) -> list[Request]:
        """Requests answered 403 (a credential used outside its grant)."""
        return [q for q in self.requests() if q.status == 403]

    def bucket_bytes(self, bucket: str, prefix: str = "") -> int:
        """Total size of the objects in ``bucket`` under ``prefix``."""
        s3 = self.client("s3")
        total = 0
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            total += sum(o["Size"] for o in page.get("Contents", []))
        return total
