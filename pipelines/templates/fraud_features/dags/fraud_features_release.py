"""fraud_features_release: the model's release DAG, started by an operator (conf: interval,
effective_from, why; all optional).

plan (the newest certified interval to evaluate on, the window before it to train on) ->
train (registered in the spec's MLflow registry, certified data only) -> shadow (one task per
region, beside the release in force) -> evaluate -> promote (the release is in force in every
region from one interval on; the Asset lockstep://fraud_features/release is updated).
"""

from pathlib import Path

from pipelines.airflow import build_release_dag

dag = build_release_dag(Path(__file__).resolve().parent.parent / "fraud_features.yaml")
