"""fraud_features, deployed: per-region buckets, one Celery queue per region group."""

from pathlib import Path

from pipelines.airflow import build_dag

dag = build_dag(Path(__file__).with_name("fraud_features.yaml"))
