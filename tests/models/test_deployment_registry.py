"""The deployment's model registry for real: MLflow's registry on PostgreSQL, in a database of
its own that ``docker/create_registry.py`` makes (as compose's ``airflow-init`` runs it), and
its artifacts in the control bucket of an S3 server with IAM enforced (moto), each role's key
holding the policy ``s3_policies`` derives from the spec. The control key writes a model
version's artifact; a region's key loads that version and may not write there; the spec's
``${VAR}`` values in ``models.registry_uri`` are read when used."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from pipelines.airflow.postgres import DEFAULT_POSTGRES_ADMIN_URL, check_postgres, drop_database
from pipelines.spec import PipelineSpec, load_spec
from tests.conftest import REPO, services_required, small_spec_data
from tests.test_s3 import CONTROL_BUCKET, bucket, env_name, s3_storage

pytestmark = pytest.mark.skipif(importlib.util.find_spec("moto") is None or importlib.util.find_spec("boto3") is None,
                                reason="moto's server is not installed: pip install -e '.[dev]'")

REGIONS = 2
ADMIN = os.environ.get("LOCKSTEP_POSTGRES_URL", DEFAULT_POSTGRES_ADMIN_URL)


@pytest.fixture
def database() -> Iterator[str]:
    """A database name no one uses yet on the test server (dropped afterwards)."""
    problem = check_postgres(ADMIN)
    if problem:
        if services_required():
            pytest.fail(f"LOCKSTEP_REQUIRE_SERVICES=1 but PostgreSQL is unusable: {problem}", pytrace=False)
        pytest.skip(problem)
    name = f"lockstep_mlflow_{uuid.uuid4().hex[:10]}"
    try:
        yield name
    finally:
        drop_database(name, admin_url=ADMIN)


def _keys(monkeypatch: pytest.MonkeyPatch, s3: object, control_as: str) -> None:
    """The environment of a worker whose control-plane key is ``control_as``'s (the control
    worker: ``control``; a region's: that region's key, as compose mounts it)."""
    from tests.distributed.s3server import MotoS3

    assert isinstance(s3, MotoS3)
    creds = s3.credentials[control_as]
    monkeypatch.setenv("LOCKSTEP_S3_CONTROL_KEY_ID", creds.key_id)
    monkeypatch.setenv("LOCKSTEP_S3_CONTROL_SECRET", creds.secret)


def test_registry_on_postgres_and_artifacts_in_the_control_bucket(
        database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow
    import mlflow.sklearn
    from botocore.exceptions import ClientError
    from sklearn.linear_model import LogisticRegression
    from sqlalchemy.engine import make_url

    from pipelines.control.policies import s3_policies
    from pipelines.models import registry
    from tests.distributed.s3server import MotoS3

    pg = make_url(ADMIN)
    data = small_spec_data(REGIONS)
    data["storage"] = s3_storage(data["regions"])
    data["models"] = {
        "name": "deployed_model",
        # the user from a ${VAR} (the deployment's password comes this way, from a secret's file)
        "registry_uri": f"postgresql://${{LOCKSTEP_TEST_REGISTRY_USER}}@{pg.host}:{pg.port or 5432}/{database}",
        "artifact_location": f"s3://{CONTROL_BUCKET}/mlflow",
    }
    spec_file = tmp_path / "deployed.yaml"
    spec_file.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("LOCKSTEP_TEST_REGISTRY_USER", pg.username or "postgres")
    regions = data["regions"]
    policies = s3_policies(load_spec(spec_file))
    grants: dict[str, object] = {r: policies[f"region:{r}"] for r in regions}
    grants["control"] = policies["control"]
    with MotoS3(tmp_path / "moto", buckets=[*map(bucket, regions), CONTROL_BUCKET],
                grants=grants, record=False) as s3:  # type: ignore[arg-type]
        monkeypatch.setenv("LOCKSTEP_S3_ENDPOINT", s3.endpoint)
        for r in regions:
            monkeypatch.setenv(f"{env_name(r)}_KEY_ID", s3.credentials[r].key_id)
            monkeypatch.setenv(f"{env_name(r)}_SECRET", s3.credentials[r].secret)
        _keys(monkeypatch, s3, "control")

        # airflow-init: the database and MLflow's tables and experiment; a second run keeps them
        def init() -> subprocess.CompletedProcess[str]:
            env = {**os.environ, "PYTHONPATH": str(REPO)}
            return subprocess.run([sys.executable, str(REPO / "docker" / "create_registry.py"), str(spec_file)],
                                  env=env, capture_output=True, text=True, timeout=300, check=False)

        first = init()
        assert first.returncode == 0, first.stderr
        assert f"database {database} created" in first.stdout and "***" not in first.stdout
        second = init()
        assert second.returncode == 0 and f"database {database} kept" in second.stdout, second.stderr

        # the control worker registers a version: its artifact lands under the control bucket's mlflow/
        spec: PipelineSpec = load_spec(spec_file)
        assert registry.registry_uri(spec) == f"postgresql://{pg.username or 'postgres'}@{pg.host}:" \
                                              f"{pg.port or 5432}/{database}"
        assert registry.s3_environment(spec)["MLFLOW_S3_ENDPOINT_URL"] == s3.endpoint
        model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
        with registry.registry(spec):  # MLflow's telemetry switch is set once, for good
            pass
        before = dict(os.environ)
        with registry.registry(spec), mlflow.start_run(experiment_id=registry.experiment_id(spec)):
            info = mlflow.sklearn.log_model(model, name="model", registered_model_name="deployed_model",
                                            serialization_format="cloudpickle")
        # the control key and the registry's URI lived as long as the registration, no longer
        assert dict(os.environ) == before, sorted(set(os.environ.items()) ^ set(before.items()))
        version = str(info.registered_model_version)
        admin = s3.client("s3")
        listed = admin.list_objects_v2(Bucket=CONTROL_BUCKET, Prefix="mlflow/")
        assert any(o["Key"].endswith("model.pkl") for o in listed.get("Contents", [])), listed
        # the version is a row of the PostgreSQL database's MLflow tables
        import psycopg2

        conn = psycopg2.connect(host=pg.host, port=pg.port or 5432, user=pg.username or "postgres", dbname=database)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT name, version FROM model_versions")
                assert cur.fetchall() == [("deployed_model", int(version))]
        finally:
            conn.close()

        # a region's worker: its key loads the version; it may not write the artifacts
        _keys(monkeypatch, s3, regions[0])
        registry._MODELS.clear()
        import mlflow.store.artifact.s3_artifact_repo as s3_repo

        s3_repo._cached_get_s3_client.cache_clear()  # MLflow caches its S3 client per endpoint
        loaded = registry.load_model(spec, version)
        assert loaded.predict_proba([[3.0]])[0, 1] == model.predict_proba([[3.0]])[0, 1]
        region = s3.client("s3", s3.credentials[regions[0]])
        with pytest.raises(ClientError) as denied:
            region.put_object(Bucket=CONTROL_BUCKET, Key="mlflow/forged/model.pkl", Body=b"x")
        assert denied.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
