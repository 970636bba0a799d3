"""fraud_model_scoring: scores each certified interval of fraud_features in every region (on the
region's queue) with the fraud_model release in force for that interval; none in force: it says so."""

from pathlib import Path

from pipelines.airflow import build_scoring_dag

dag = build_scoring_dag(Path(__file__).with_name("fraud_features.yaml"), dag_id="fraud_model_scoring")
