"""fraud_model_scoring, deployed: scores each certified interval of fraud_features, one task
per region group on that group's queue (so each region's data is read by its own workers)."""

from datetime import UTC, datetime
from pathlib import Path

from airflow.sdk import DAG, task

from pipelines.airflow import certified_asset
from pipelines.airflow.consumer import certified_generation
from pipelines.airflow.queues import region_groups
from pipelines.spec import load_spec

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
    def score(regions: list[str], **context) -> dict:
        from pipelines.scoring import score_certified

        refs = score_certified(load_spec(SPEC), generation_id=certified_generation(context), regions=regions)
        return {region: {"uri": r.uri, "version": r.version, "rows": r.rows} for region, r in refs.items()}

    for group in region_groups(load_spec(SPEC)):
        score.override(task_id=f"score_{group.group_id}", queue=group.queue or "default")(list(group.regions))
