"""fraud_features_release, deployed: train fraud_model on certified data (control queue),
shadow-score it in every region on its group's queue, evaluate and promote it (control
queue). Started by an operator: `airflow dags trigger fraud_features_release`, or the UI."""

from pathlib import Path

from pipelines.airflow import build_release_dag

dag = build_release_dag(Path(__file__).with_name("fraud_features.yaml"))
