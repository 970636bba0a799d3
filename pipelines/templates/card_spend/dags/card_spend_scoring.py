"""card_spend_scoring: a model DAG that runs on every certified interval of card_spend.

It is scheduled on the pipeline's certified Asset and reads through ``read_for_consumer``:
the generation that triggered it, the consumer's ``max_staleness`` measured against this
run's logical date and its pinned feature version, all from the spec's ``consumers``.
"""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, task  # noqa: TID251 (a DAG file, not the core)

from pipelines.airflow import certified_asset

SPEC = Path(__file__).resolve().parent.parent / "card_spend.yaml"

with DAG(
    dag_id="card_spend_scoring",
    schedule=[certified_asset("card_spend")],
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    tags=["lockstep", "card_spend", "model"],
    default_args={"retries": 2},
    doc_md=__doc__,
):

    @task
    def score(**context: Any) -> dict[str, int]:
        import polars as pl

        from pipelines import load_spec, read_for_consumer

        spec = load_spec(SPEC)
        scored: dict[str, int] = {}
        for region in spec.regions:
            features = read_for_consumer(spec, "card_spend_scoring", "card_daily", region, context)
            # replace with your model: here, the share of a card's weekly spend made today
            scores = features.select("card_id", score=pl.col("spend_1d") / pl.col("spend_7d"))
            scored[region] = scores.select(pl.len()).collect().item()
        return scored

    score()
