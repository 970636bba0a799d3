"""The MLflow model registry of a spec, and models loaded from it (cached per process).

The registry and tracking URI is ``models.registry_uri``, else a SQLite file beside the
control tables (``<control root>/<pipeline>/_lockstep/mlflow.db``); artifacts go to
``models.artifact_location``, else the folder ``mlflow-artifacts`` there. Both may hold
``${VAR}`` references (a password: ``postgresql://lockstep:${DB_PASSWORD}@db/mlflow``), read
when used. Nothing here reads an alias back: the release log is the truth, MLflow's
``champion`` alias only mirrors it.

MLflow reads its telemetry switch, and its S3 artifact store its endpoint and credentials,
from the process environment only: :func:`use_registry` sets ``MLFLOW_DISABLE_TELEMETRY``
there (unless the user has) before MLflow is imported and, for an ``s3://`` artifact
location, ``MLFLOW_S3_ENDPOINT_URL`` and the AWS key from the spec's control-plane storage
options (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``:
the key of the role this process runs as). These are the writes to the environment outside
the Airflow glue.
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path
from typing import Any

from pipelines.errors import SpecError
from pipelines.spec import PipelineSpec
from pipelines.spec.release import ModelsSpec

#: the MLflow alias that mirrors the release in force (set after Lockstep's commit, never read)
CHAMPION = "champion"


def models_spec(spec: PipelineSpec) -> ModelsSpec:
    """The spec's ``models:`` section, or a :class:`SpecError` saying it is missing."""
    if spec.models is None:
        raise SpecError(f"{spec.name}: the spec has no models: section", field="models")
    return spec.models


def _local_control(spec: PipelineSpec, root: str | None) -> Path:
    control = spec.control_root(root)
    if "://" in control and not control.startswith("file://"):
        raise SpecError(f"{spec.name}: the control root {control!r} is not local; set models.registry_uri "
                        "and models.artifact_location", field="models.registry_uri")
    path = Path(control.removeprefix("file://")) / spec.name / "_lockstep"
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


def registry_uri(spec: PipelineSpec, root: str | None = None) -> str:
    """The registry (and tracking) URI: the spec's (its ``${VAR}`` values read), else a SQLite
    file under the control root."""
    ms = models_spec(spec)
    if ms.registry_uri:
        return spec.resolve_path(ms.registry_uri, "models.registry_uri")
    return f"sqlite:///{_local_control(spec, root) / 'mlflow.db'}"


def artifact_location(spec: PipelineSpec, root: str | None = None) -> str:
    """Where model artifacts go: the spec's (its ``${VAR}`` values read), else a folder under
    the control root."""
    ms = models_spec(spec)
    if ms.artifact_location:
        return spec.resolve_path(ms.artifact_location, "models.artifact_location")
    return (_local_control(spec, root) / "mlflow-artifacts").as_uri()


#: MLflow's S3 artifact store's settings (it reads them from the environment) <- the storage
#: option of the spec's control plane each is taken from
S3_ENVIRONMENT = {"MLFLOW_S3_ENDPOINT_URL": "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID": "AWS_ACCESS_KEY_ID",
                  "AWS_SECRET_ACCESS_KEY": "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION": "AWS_REGION"}


def s3_environment(spec: PipelineSpec, root: str | None = None) -> dict[str, str]:
    """What MLflow's S3 artifact store is handed for an ``s3://`` artifact location: the
    control plane's endpoint and key (the role's: a region worker's key reads artifacts only);
    nothing for another location."""
    if not artifact_location(spec, root).startswith("s3://"):
        return {}
    options = {k.upper(): v for k, v in spec.control_options().items()}
    return {name: options[option] for name, option in S3_ENVIRONMENT.items() if options.get(option)}


def use_registry(spec: PipelineSpec, root: str | None = None) -> Any:
    """Point MLflow at the spec's registry (and, for an ``s3://`` artifact location, its S3
    store at the control plane's endpoint and key); returns an ``MlflowClient`` on it."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.update(s3_environment(spec, root))
    import mlflow

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    uri = registry_uri(spec, root)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def experiment_id(spec: PipelineSpec, root: str | None = None) -> str:
    """The experiment runs of the spec's model are logged to (created on first use)."""
    client = use_registry(spec, root)
    name = f"lockstep/{spec.name}/{models_spec(spec).name}"
    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    return str(client.create_experiment(name, artifact_location=artifact_location(spec, root)))


@functools.lru_cache(maxsize=16)
def _load(uri: str, name: str, version: str) -> Any:
    import mlflow.sklearn

    mlflow.set_registry_uri(uri)
    return mlflow.sklearn.load_model(f"models:/{name}/{version}")


def load_model(spec: PipelineSpec, version: str, root: str | None = None) -> Any:
    """The registered model ``version`` (never an alias), loaded once per process."""
    use_registry(spec, root)
    return _load(registry_uri(spec, root), models_spec(spec).name, str(version))
