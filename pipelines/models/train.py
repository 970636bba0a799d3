"""Training on certified data only: a window of intervals, every region, read through
:func:`~pipelines.certify.read_certified` at the generation certified for each interval.

A window holding an interval with no certification in force is refused with the interval
named, unless the caller excludes it explicitly (the exclusion is recorded in the model's
tags). The model is a standardised logistic regression (deterministic: lbfgs on the same
rows gives the same coefficients; ``seed`` fixes what randomness remains). It is logged to
MLflow with its signature, per-region ROC AUC and PR AUC, and tags binding it to the feature
version, the profile plan hash, the suites (by content hash) and the generations trained on,
then registered as a new version of the spec's model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from pipelines.certify import active_certifications, read_certified
from pipelines.errors import CertificationError, SpecError
from pipelines.models.registry import experiment_id, models_spec, registry
from pipelines.spec import PipelineSpec

#: tags of a registered model version (and its run) that bind it
TAG = "lockstep."


@dataclass(frozen=True)
class TrainedModel:
    """A registered model version and what it was trained on."""

    name: str
    version: str
    run_id: str
    feature_version: str
    generations: dict[str, str]  # interval -> generation id
    suites: dict[str, Any]
    excluded: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)


def feature_version_in_force(spec: PipelineSpec) -> str:
    """The version of the feature set that writes the model's feature table."""
    table = models_spec(spec).feature_table
    fs = next((f for f in spec.features if f.output == table), None)
    if fs is None:
        raise SpecError(f"{spec.name}: no feature set writes {table!r}", field="models.feature_table")
    return fs.version


def training_window(spec: PipelineSpec, until: str) -> list[str]:
    """The keys of the ``models.window`` consecutive intervals ending with ``until``'s."""
    from pipelines.models.window import window_keys

    return window_keys(spec, until, models_spec(spec).window)


def features_frame(frame: pl.DataFrame, columns: list[str]) -> Any:
    """The model's input: the feature columns as float64, nulls as 0 (a pandas frame, named columns)."""
    return frame.select(pl.col(c).cast(pl.Float64).fill_null(0.0) for c in columns).to_pandas()


def plan_hash_in_force(spec: PipelineSpec) -> str:
    """The hash of the feature table's profile plan under the spec (what a model is bound to)."""
    from pipelines.evidence import plan_hash, profile_plan

    return plan_hash(profile_plan(spec, spec.table(models_spec(spec).feature_table)))


def _certified_window(spec: PipelineSpec, keys: list[str], exclude: list[str], root: str | None
                      ) -> dict[str, Any]:
    active = active_certifications(spec, root=root)
    unknown = sorted(set(exclude) - set(keys))
    if unknown:
        raise SpecError(f"{spec.name}: excluded interval(s) {unknown} are not in the window {keys}")
    missing = [k for k in keys if k not in exclude and k not in active]
    if missing:
        raise CertificationError(
            f"{spec.name}: training window {keys[0]}..{keys[-1]}: interval {missing[0]} is not certified"
            + (f" (nor {', '.join(missing[1:])})" if missing[1:] else "")
            + "; train on certified intervals only, or exclude it explicitly", retryable=False)
    chosen = {k: active[k] for k in keys if k not in exclude}
    if not chosen:
        raise CertificationError(f"{spec.name}: training window {keys}: every interval is excluded", retryable=False)
    return chosen


def train(spec: PipelineSpec, *, until: str, exclude: list[str] | None = None, root: str | None = None
          ) -> TrainedModel:
    """Train the spec's model on the certified window ending with ``until`` (every region),
    log it to MLflow and register a new version. Refuses an uncertified interval by name."""
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import average_precision_score, roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from pipelines.certify import bindings_hash

    ms = models_spec(spec)
    keys = training_window(spec, until)
    excluded = sorted(exclude or [])
    window = _certified_window(spec, keys, excluded, root)
    frames = []
    for decision in window.values():
        for region in spec.regions:
            lf = read_certified(spec, ms.feature_table, region, at=decision.generation_id, root=root)
            frames.append(lf.collect().with_columns(region=pl.lit(region)))
    data = pl.concat(frames, how="diagonal_relaxed").sort("region", ms.key)
    versions = sorted(str(v) for v in data["feature_version"].unique()) if "feature_version" in data.columns else []
    if len(versions) != 1:
        raise CertificationError(f"{spec.name}: the window holds feature versions {versions}; train on one", retryable=False)
    suites: dict[str, Any] = {}
    for decision in window.values():
        suites.update(decision.bindings.get("suites") or {})
    x = features_frame(data, ms.features)
    y = data[ms.label].cast(pl.Int8).to_numpy()
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=ms.seed))
    model.fit(x, y)
    proba = model.predict_proba(x)[:, 1]
    metrics: dict[str, float] = {}
    regions = data["region"].to_numpy()
    for region in spec.regions:
        mask = regions == region
        if len(set(y[mask])) == 2:  # both classes present: the metrics are defined
            metrics[f"roc_auc.{region}"] = float(roc_auc_score(y[mask], proba[mask]))
            metrics[f"pr_auc.{region}"] = float(average_precision_score(y[mask], proba[mask]))
    generations = {k: d.generation_id for k, d in window.items()}
    tags = {
        f"{TAG}pipeline": spec.name, f"{TAG}feature_table": ms.feature_table,
        f"{TAG}feature_version": versions[0], f"{TAG}plan_hash": plan_hash_in_force(spec),
        f"{TAG}suites": json.dumps(suites, sort_keys=True), f"{TAG}suites_hash": bindings_hash(suites),
        f"{TAG}generations": json.dumps(generations, sort_keys=True), f"{TAG}excluded": json.dumps(excluded),
        f"{TAG}window": json.dumps(keys), f"{TAG}features": json.dumps(ms.features),
    }
    with registry(spec, root) as client:
        with mlflow.start_run(experiment_id=experiment_id(spec, root)) as run:
            mlflow.set_tags(tags)
            mlflow.log_params({"seed": ms.seed, "model": "StandardScaler+LogisticRegression", "rows": data.height})
            mlflow.log_metrics(metrics)
            info = mlflow.sklearn.log_model(model, name="model", signature=infer_signature(x, proba),
                                            registered_model_name=ms.name, serialization_format="cloudpickle")
        version = str(info.registered_model_version)  # the version's tags once its run has ended, as before
        for k, v in tags.items():
            client.set_model_version_tag(ms.name, version, k, v)
    return TrainedModel(ms.name, version, run.info.run_id, versions[0], generations, suites, excluded, metrics)


def version_tags(spec: PipelineSpec, version: str, root: str | None = None) -> dict[str, str]:
    """The tags of a registered model version (what it was trained on)."""
    with registry(spec, root) as client:
        return dict(client.get_model_version(models_spec(spec).name, str(version)).tags)
