"""fraud_model_scoring, deployed: scores each certified interval of fraud_features with the
release in force for it, claimed once on the control queue, then one task per region on its
group's queue (each region's data read by its own workers, the model from the registry)."""

from pathlib import Path

from pipelines.airflow import build_scoring_dag

dag = build_scoring_dag(Path(__file__).with_name("fraud_features.yaml"), dag_id="fraud_model_scoring")
