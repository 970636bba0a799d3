"""fraud_features_release: train fraud_model on certified fraud_features data, shadow-score it in
every region, evaluate and promote it (the Asset lockstep://fraud_features/release on promotion)."""

from pathlib import Path

from pipelines.airflow import build_release_dag

dag = build_release_dag(Path(__file__).with_name("fraud_features.yaml"))
