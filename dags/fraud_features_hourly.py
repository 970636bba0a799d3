"""fraud_features_hourly: the fraud features every hour, certified before any model reads them."""

from pathlib import Path

from pipelines.airflow import build_dag

dag = build_dag(Path(__file__).with_name("fraud_features_hourly.yaml"))
