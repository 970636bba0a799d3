"""fraud_features_scoring: the model DAG, run on every certified interval of fraud_features.

It is scheduled on the pipeline's certified Asset and scores the interval the event certified
in every region with the model release in force *for that interval* (the release log decides,
never "the latest model"); every score carries its release id and model version. With no
release in force the run fails and says so: run fraud_features_release first.
"""

from pathlib import Path

from pipelines.airflow import build_scoring_dag

dag = build_scoring_dag(Path(__file__).resolve().parent.parent / "fraud_features.yaml",
                        dag_id="fraud_features_scoring")
