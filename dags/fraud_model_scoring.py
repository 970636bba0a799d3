"""fraud_model_scoring: scores each certified interval of fraud_features, in every region."""

from datetime import UTC, datetime
from pathlib import Path

from airflow.sdk import DAG, task

from pipelines.airflow import certified_asset
from pipelines.airflow.consumer import certified_generation

SPEC = Path(__file__).with_name("fraud_features.yaml")

with DAG(
    dag_id="fraud_model_scoring",
    schedule=[certified_asset("fraud_features")],
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    tags=["lockstep", "fraud", "model"],
    default_args={"retries": 2},
    doc_md=__doc__,
):

    @task
    def score(**context) -> dict:
        from pipelines.scoring import score_certified
        from pipelines.spec import load_spec

        refs = score_certified(load_spec(SPEC), generation_id=certified_generation(context))
        return {region: {"uri": r.uri, "version": r.version, "rows": r.rows} for region, r in refs.items()}

    score()
