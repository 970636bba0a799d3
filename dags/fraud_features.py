"""fraud_features: card-fraud features for 12 regions, certified before any model reads them."""

from pathlib import Path

from pipelines.airflow import build_dag

dag = build_dag(Path(__file__).with_name("fraud_features.yaml"))
