"""The MLflow model registry of a spec, and models loaded from it (cached per process).

The registry and tracking URI is ``models.registry_uri``, else a SQLite file beside the
control tables (``<control root>/<pipeline>/_lockstep/mlflow.db``); artifacts go to
``models.artifact_location``, else the folder ``mlflow-artifacts`` there. Both may hold
``${VAR}`` references (a password: ``postgresql://lockstep:${DB_PASSWORD}@db/mlflow``), read
when used. Nothing here reads an alias back: the release log is the truth, MLflow's
``champion`` alias only mirrors it.

MLflow reads its telemetry switch, and its S3 artifact store its endpoint and credentials,
from the process environment only, and puts its tracking and registry URIs there itself:
:func:`registry` sets ``MLFLOW_DISABLE_TELEMETRY`` there (unless the user has) before MLflow
is imported and, for the block it scopes only, the URIs and, for an ``s3://`` artifact
location, ``MLFLOW_S3_ENDPOINT_URL`` and the AWS key from the spec's control-plane storage
options (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``:
the key of the role this process runs as), restored when the block ends. These are the
writes to the environment outside the Airflow glue.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
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


#: where MLflow puts the URIs it was set to (a subprocess would inherit them)
MLFLOW_URI_ENVIRONMENT = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


def s3_environment(spec: PipelineSpec, root: str | None = None) -> dict[str, str]:
    """What MLflow's S3 artifact store is handed for an ``s3://`` artifact location: the
    control plane's endpoint and key (the role's: a region worker's key reads artifacts only);
    nothing for another location."""
    if not artifact_location(spec, root).startswith("s3://"):
        return {}
    options = {k.upper(): v for k, v in spec.control_options().items()}
    return {name: options[option] for name, option in S3_ENVIRONMENT.items() if options.get(option)}


#: MLflow's state is the process's (its URIs, and the environment it reads them and the S3
#: store's key from): one registry session at a time in a process, nested ones inside it, each
#: nested one's URI on this stack
_SESSION = threading.RLock()
_URIS: list[str] = []


@contextlib.contextmanager
def registry(spec: PipelineSpec, root: str | None = None) -> Iterator[Any]:
    """MLflow pointed at the spec's registry (and, for an ``s3://`` artifact location, its S3
    store at the control plane's endpoint and key) for the block; an ``MlflowClient`` on it.

    The environment is what it was once the block ends: MLflow puts its tracking URI there
    (``MLFLOW_TRACKING_URI``, which may hold the registry database's password) and the S3
    store reads its key from there, so neither outlives the call that needs it, nor reaches a
    process started afterwards."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    uri = registry_uri(spec, root)
    with _SESSION:
        scoped = s3_environment(spec, root)
        saved = {k: os.environ.get(k) for k in (*scoped, *MLFLOW_URI_ENVIRONMENT)}
        _URIS.append(uri)
        try:
            os.environ.update(scoped)
            mlflow.set_tracking_uri(uri)
            mlflow.set_registry_uri(uri)
            yield mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
        finally:
            _URIS.pop()
            outer = _URIS[-1] if _URIS else None  # None: MLflow's own "unset"
            mlflow.set_tracking_uri(outer)  # type: ignore[arg-type]
            mlflow.set_registry_uri(outer)  # type: ignore[arg-type]
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def experiment_id(spec: PipelineSpec, root: str | None = None) -> str:
    """The experiment runs of the spec's model are logged to (created on first use)."""
    with registry(spec, root) as client:
        name = f"lockstep/{spec.name}/{models_spec(spec).name}"
        found = client.get_experiment_by_name(name)
        if found is not None:
            return str(found.experiment_id)
        return str(client.create_experiment(name, artifact_location=artifact_location(spec, root)))


#: models loaded in this process: (registry URI, name, version) -> the model (the oldest dropped
#: past :data:`LOADED_MODELS`)
_MODELS: dict[tuple[str, str, str], Any] = {}
LOADED_MODELS = 16


def load_model(spec: PipelineSpec, version: str, root: str | None = None) -> Any:
    """The registered model ``version`` (never an alias), loaded once per process."""
    key = (registry_uri(spec, root), models_spec(spec).name, str(version))
    if key not in _MODELS:
        with registry(spec, root):
            import mlflow.sklearn

            model = mlflow.sklearn.load_model(f"models:/{key[1]}/{key[2]}")
        while len(_MODELS) >= LOADED_MODELS:
            _MODELS.pop(next(iter(_MODELS)))
        _MODELS[key] = model
    return _MODELS[key]
