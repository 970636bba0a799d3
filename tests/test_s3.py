"""Object storage as a first-class root, on a protocol-level S3 stand-in (moto's server mode
on loopback, IAM enforced): one bucket per region plus a control bucket, each region with
credentials for its own bucket and its own prefix of the control bucket
(``<base>/<pipeline>/_lockstep/regions/<region>/``, where it publishes its evidence), the
control plane with credentials for the control bucket only.

A clean interval certifies and a ``stale_reference`` interval blocks with the differing
keys; every ``_lockstep`` table and the Data Docs sit in the control bucket; a rerun writes
nothing; the gate, holding only the control credentials, never touches a regional bucket.
A region's key publishes its evidence and is denied the decision log (no forged
certification), another region's prefix and the check results; a bogus key is denied;
``status``, ``explain``, the matrix and the view's JSON routes answer with a read-only key
of the control bucket alone in the environment (no regional credential at all).
"""

from __future__ import annotations

import importlib.util
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.control.results import run_results
from pipelines.runner import certify, run_interval
from pipelines.spec import Interval, PipelineSpec, parse_spec
from pipelines.storage import read_table, table_version
from pipelines.validation.docs import DocsWriter, docs_uri
from tests.conftest import REPO, small_spec_data

pytestmark = pytest.mark.skipif(importlib.util.find_spec("moto") is None or importlib.util.find_spec("boto3") is None,
                                reason="moto's server is not installed: pip install -e '.[dev]'")

D1, D2, D3 = Interval.for_date("2026-01-01"), Interval.for_date("2026-01-02"), Interval.for_date("2026-01-03")
REGIONS = 4
CONTROL_BUCKET = "lockstep-control"


def bucket(region: str) -> str:
    return f"lockstep-{region}"


def env_name(region: str) -> str:
    return "LOCKSTEP_S3_" + region.upper().replace("-", "_")


def s3_storage(regions: list[str]) -> dict[str, object]:
    """The spec's storage section: {region} buckets, a control bucket, keys from ${VAR}s."""
    return {
        "root": "s3://lockstep-{region}/lake",
        "control_root": f"s3://{CONTROL_BUCKET}/lake",
        "options": {"AWS_ENDPOINT_URL": "${LOCKSTEP_S3_ENDPOINT}", "AWS_ALLOW_HTTP": "true",
                    "AWS_REGION": "us-east-1",
                    "AWS_ACCESS_KEY_ID": "${LOCKSTEP_S3_CONTROL_KEY_ID}",
                    "AWS_SECRET_ACCESS_KEY": "${LOCKSTEP_S3_CONTROL_SECRET}"},
        "regions": {r: {"options": {"AWS_ACCESS_KEY_ID": f"${{{env_name(r)}_KEY_ID}}",
                                    "AWS_SECRET_ACCESS_KEY": f"${{{env_name(r)}_SECRET}}"}} for r in regions},
    }


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from pipelines.control.policies import s3_policies
    from tests.distributed.s3server import MotoS3

    data = small_spec_data(REGIONS)
    data["storage"] = s3_storage(data["regions"])
    regions = data["regions"]
    # each role's key holds exactly the policy Lockstep derives from the spec (README: Deploy)
    policies = s3_policies(parse_spec(data, "s3-test"))
    grants: dict[str, object] = {r: policies[f"region:{r}"] for r in regions}
    grants.update(control=policies["control"], viewer=policies["viewer"])
    with MotoS3(tmp_path_factory.mktemp("moto"), buckets=[*map(bucket, regions), CONTROL_BUCKET],
                grants=grants, record=True) as server:  # type: ignore[arg-type]
        yield server


@pytest.fixture
def spec(s3: object, monkeypatch: pytest.MonkeyPatch) -> PipelineSpec:
    from tests.distributed.s3server import MotoS3

    assert isinstance(s3, MotoS3)
    data = small_spec_data(REGIONS, 300)
    data["storage"] = s3_storage(data["regions"])
    data["sources"]["merchant_risk"]["faults"] = [
        {"kind": "stale_reference", "regions": [data["regions"][1]], "dates": [D2.ds]}]
    monkeypatch.delenv("LOCKSTEP_ROOT", raising=False)
    monkeypatch.setenv("LOCKSTEP_S3_ENDPOINT", s3.endpoint)
    # a control root in a bucket has no local place for the hash key: the deployment sets one
    monkeypatch.setenv("LOCKSTEP_HASH_KEY", secrets.token_hex(32))
    for name, creds in s3.credentials.items():
        if name == "admin":
            continue
        prefix = "LOCKSTEP_S3_CONTROL" if name == "control" else env_name(name)
        monkeypatch.setenv(f"{prefix}_KEY_ID", creds.key_id)
        monkeypatch.setenv(f"{prefix}_SECRET", creds.secret)
    return parse_spec(data, "s3-test").with_path(REPO / "dags" / "fraud_features.yaml")


def test_regions_in_their_buckets_certify_and_a_stale_reference_blocks(spec: PipelineSpec, s3: object) -> None:
    from tests.distributed.s3server import MotoS3

    assert isinstance(s3, MotoS3)
    first = run_interval(spec, D1)
    assert first.decision is not None and first.decision.certified, first.decision
    # each region's tables in its own bucket; _lockstep and the Data Docs in the control bucket
    r0 = spec.regions[0]
    uri = spec.table_uri(r0, "raw", "transactions")
    assert uri == f"s3://{bucket(r0)}/lake/{spec.name}/{r0}/raw/transactions"
    rows = read_table(uri, partition=D1.partition(["ds"]), storage_options=spec.region_options(r0)).collect()
    assert rows.height == 300 and rows["txn_id"].n_unique() == 300
    for name in ("certifications", "check_results", f"regions/{r0}/evidence", f"regions/{r0}/checks"):
        assert s3.bucket_bytes(CONTROL_BUCKET, f"lake/{spec.name}/_lockstep/{name}/_delta_log/") > 0, name
    docs = DocsWriter(docs_uri(spec.control_root(), spec.name, r0), spec.control_options())
    files = docs.files()
    assert "index.html" in files and f"{D1.key}/{r0}.json" in files
    assert any(f.startswith("validations/") and f.endswith(".html") for f in files), files
    assert s3.bucket_bytes(CONTROL_BUCKET, f"lake/{spec.name}/_lockstep/data_docs") == 0  # no site shared by regions
    for r in spec.regions:
        assert s3.bucket_bytes(bucket(r), f"lake/{spec.name}/_lockstep") == 0

    # a rerun of the same inputs writes no new version anywhere
    versions = {r: table_version(spec.table_uri(r, "raw", "transactions"), spec.region_options(r))
                for r in spec.regions}
    again = run_interval(spec, D1)
    assert again.decision is not None and again.decision.certified
    assert versions == {r: table_version(spec.table_uri(r, "raw", "transactions"), spec.region_options(r))
                        for r in spec.regions}

    # the stale_reference day blocks, naming the region and the differing keys
    run_interval(spec, D2, certify=False)
    s3.recording.write_text("")  # from here: the gate alone
    decision = certify(spec, D2)
    assert not decision.certified
    parity = [r for r in decision.reasons if r["check_id"] == "parity.merchant_risk"]
    assert parity and parity[0]["region"] == spec.regions[1] and "keys [" in parity[0]["message"], decision.reasons
    touched = {(q.bucket, s3.key_owner().get(q.key_id or "", q.key_id)) for q in s3.requests()}
    assert touched and {b for b, _ in touched} == {CONTROL_BUCKET}, touched
    assert {who for _, who in touched} == {"control"}, touched
    assert s3.denied() == []
    # the gate read every region's interval index of D2 and of the drift window's D1 (each verified
    # against its tables: D2's publishes changed only D2's partitions), not their logs
    snapshot = [r for r in run_results(spec.control_root(), spec.name, D2.key, decision.run_id,
                                       spec.control_options()) if r.check_id == "generation.snapshot"]
    assert snapshot and snapshot[0].details["index_misses"] == {}, snapshot[0].details["index_misses"]


def test_a_credential_outside_its_bucket_is_refused(spec: PipelineSpec, s3: object) -> None:
    """The stand-in enforces the grants: the control plane's keys cannot read a region."""
    from pipelines.errors import StorageError
    from pipelines.storage import open_table
    from tests.distributed.s3server import MotoS3

    assert isinstance(s3, MotoS3)
    run_interval(spec, D1, certify=False)
    r0 = spec.regions[0]
    with pytest.raises(StorageError):
        open_table(spec.table_uri(r0, "raw", "transactions"), spec.control_options())
    assert s3.denied(), "moto did not refuse a key outside its grant"


def test_one_write_path_for_local_and_s3_tables(spec: PipelineSpec, tmp_path: Path) -> None:
    """The partition overwrite puts its file through deltalake's object store on both."""
    import polars as pl

    from pipelines.storage import write_interval

    frame = pl.DataFrame({"k": [1, 2, 3], "v": ["a", "b", "c"]})
    r0 = spec.regions[0]
    for uri, opts in ((str(tmp_path / "t"), None), (f"s3://{bucket(r0)}/scratch/t", spec.region_options(r0))):
        a = write_interval(uri, frame, partition={"ds": "2026-01-01"}, app_id="x", fingerprint=1, storage_options=opts)
        b = write_interval(uri, frame.head(2), partition={"ds": "2026-01-01"}, app_id="x", fingerprint=2,
                           storage_options=opts)
        c = write_interval(uri, frame.head(2), partition={"ds": "2026-01-01"}, app_id="x", fingerprint=2,
                           storage_options=opts)
        assert (a.rows, b.rows, c.rows, c.skipped, c.version) == (3, 2, 2, True, b.version), uri
        assert read_table(uri, storage_options=opts).collect().height == 2


def _as_worker_of(monkeypatch: pytest.MonkeyPatch, creds: object) -> None:
    """The control root's credentials (``storage.options``) resolve to ``creds``, as on a
    region worker whose environment holds its group's key (tests/distributed/test_celery.py)."""
    monkeypatch.setenv("LOCKSTEP_S3_CONTROL_KEY_ID", creds.key_id)  # type: ignore[attr-defined]
    monkeypatch.setenv("LOCKSTEP_S3_CONTROL_SECRET", creds.secret)  # type: ignore[attr-defined]


def test_a_region_key_publishes_its_evidence_and_cannot_forge_a_decision(
        spec: PipelineSpec, s3: object, monkeypatch: pytest.MonkeyPatch) -> None:
    """Least privilege by prefix: a region's key writes its bucket and its prefix of the
    control bucket; the decision log, the check results and another region's prefix refuse it;
    a key the store never issued is refused everywhere."""
    from pipelines.control.decisions import CERTIFICATIONS
    from pipelines.control.evidence import load
    from pipelines.control.tables import CERTIFICATIONS_TABLE, CHECK_RESULTS_TABLE, EVIDENCE_TABLE
    from pipelines.errors import LockstepError
    from tests.distributed.s3server import Credentials, MotoS3

    assert isinstance(s3, MotoS3)
    run_interval(spec, D1)  # a decision log to forge into (unchanged inputs: nothing new is written)
    r0, r1 = spec.regions[0], spec.regions[1]
    _as_worker_of(monkeypatch, s3.credentials[r0])
    s3.recording.write_text("")
    run_interval(spec, D3, regions=[r0], certify=False)  # the region's steps, with its key alone
    published = load(spec, [D3.key], region=r0).profiles
    assert {p.table for p in published} >= {"transactions", "merchant_features"}, published
    writes = [q for q in s3.requests() if q.method in ("PUT", "POST", "DELETE")]
    prefix = f"lake/{spec.name}/_lockstep/regions/{r0}/"
    assert any(q.bucket == CONTROL_BUCKET for q in writes), "no evidence published"
    assert all(q.bucket == bucket(r0) or (q.bucket == CONTROL_BUCKET and q.key.startswith(prefix))
               for q in writes), [(q.bucket, q.key) for q in writes]
    assert s3.denied() == []

    forged = {"decision_id": "forged", "pipeline": spec.name, "interval": D3.key, "status": "certified",
              "kind": "gate", "generation_id": "g-forged", "who": f"region:{r0}"}
    attempts = {
        "certifications": lambda: CERTIFICATIONS_TABLE.append_in_order(
            spec.lockstep_uri(CERTIFICATIONS), lambda v: {**forged, "log_version": v}, spec.control_options()),
        "check_results": lambda: CHECK_RESULTS_TABLE.append(
            spec.lockstep_uri(CHECK_RESULTS_TABLE.name), [{"pipeline": spec.name, "interval": D3.key}],
            spec.control_options()),
        f"regions/{r1}/evidence": lambda: EVIDENCE_TABLE.append(
            EVIDENCE_TABLE.region_uri(spec.control_root(), spec.name, r1),
            [{"pipeline": spec.name, "interval": D3.key, "region": r1}], spec.control_options()),
    }
    for target, attempt in attempts.items():
        s3.recording.write_text("")
        with pytest.raises(LockstepError):
            attempt()
        # refused at the first request (the key may not even read the decision log), nothing written
        denied = s3.denied()
        assert denied and all(f"/_lockstep/{target}/" in q.key for q in denied), (target, s3.requests())
        assert not [q for q in s3.requests() if q.method == "PUT" and q.status < 300], s3.requests()
    monkeypatch.setenv("LOCKSTEP_S3_CONTROL_KEY_ID", s3.credentials["control"].key_id)
    monkeypatch.setenv("LOCKSTEP_S3_CONTROL_SECRET", s3.credentials["control"].secret)
    assert not [d for d in decisions_of(spec) if d.decision_id == "forged"]

    _as_worker_of(monkeypatch, Credentials("AKIABOGUSBOGUSBOGUS0", "not-a-secret"))
    s3.recording.write_text("")
    with pytest.raises(LockstepError):
        load(spec, [D1.key], region=r0)
    assert s3.denied() and {q.key_id for q in s3.requests()} == {"AKIABOGUSBOGUSBOGUS0"}


def decisions_of(spec: PipelineSpec) -> list[object]:
    from pipelines.certify import decisions

    return list(decisions(spec))


def test_status_explain_and_the_view_need_a_read_only_control_key_alone(
        spec: PipelineSpec, s3: object, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The control plane reads only the control plane: with no regional credential in the
    environment, ``lockstep status`` / ``explain`` and the view's JSON routes answer, from the
    control bucket alone, with the viewer's read-only key (the api-server's)."""
    import json

    import yaml
    from typer.testing import CliRunner

    from pipelines.airflow.ui import routes
    from pipelines.cli import _register, app
    from tests.distributed.s3server import MotoS3

    assert isinstance(s3, MotoS3)
    run_interval(spec, D1)
    run_interval(spec, D2)  # blocked: the stale reference in regions[1]
    # the spec as the api-server reads it (its DAGs folder); no regional key anywhere
    data = small_spec_data(REGIONS, 300)
    data["storage"] = s3_storage(data["regions"])
    data["name"] = spec.name
    data["sources"]["merchant_risk"]["faults"] = [
        {"kind": "stale_reference", "regions": [data["regions"][1]], "dates": [D2.ds]}]
    data["validation"]["suites_dir"] = str(REPO / "expectations")
    (tmp_path / f"{spec.name}.yaml").write_text(yaml.safe_dump(data))
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(tmp_path))
    for r in spec.regions:
        monkeypatch.delenv(f"{env_name(r)}_KEY_ID")
        monkeypatch.delenv(f"{env_name(r)}_SECRET")
    _as_worker_of(monkeypatch, s3.credentials["viewer"])  # the api-server's key: the control bucket, read only
    s3.recording.write_text("")

    st = routes.status(spec.name, None)
    rows = {(t["region"], t["table"]): t for t in st["tables"]}
    assert rows[(spec.regions[1], "raw/transactions")]["latest_rows"] == 300
    assert rows[(spec.regions[1], "raw/transactions")]["latest_interval"] == D2.key
    assert st["certified"]["interval"] == D1.key and [b["interval"] for b in st["blocked"]] == [D2.key]
    m = routes.matrix(spec.name, None, routes.MatrixQuery())
    assert m["cells"][D1.key][spec.regions[0]]["state"] == "certified"
    blocked = m["cells"][D2.key][spec.regions[1]]
    assert blocked["state"] == "blocked" and "parity.merchant_risk" in blocked["reason"], blocked
    assert all(m["cells"][k][r]["has_data"] for k in (D1.key, D2.key) for r in spec.regions)
    detail = routes.interval_detail(spec.name, D2.key, None)
    assert any(f["check_id"] == "parity.merchant_risk" and f["region"] == spec.regions[1] for f in detail["failed"])
    assert routes.decision_log(spec.name, None)[0]["interval"] == D2.key

    _register()
    runner = CliRunner()
    path = str(tmp_path / f"{spec.name}.yaml")
    out = runner.invoke(app, ["status", path, "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["certified"]["interval"] == D1.key
    out = runner.invoke(app, ["explain", path, "--date", D2.ds, "--json"])
    assert out.exit_code == 0, out.output
    assert any(f["check_id"] == "parity.merchant_risk" for f in json.loads(out.output)["failed"])

    touched = {(q.bucket, s3.key_owner().get(q.key_id or "", q.key_id)) for q in s3.requests()}
    assert touched == {(CONTROL_BUCKET, "viewer")}, touched
    assert s3.denied() == []
    assert {q.method for q in s3.requests()} <= {"GET", "HEAD"}, "a read wrote something"
