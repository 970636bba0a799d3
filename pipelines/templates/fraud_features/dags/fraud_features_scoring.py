"""fraud_features_scoring: a model DAG that runs on every certified interval of fraud_features.

It is scheduled on the pipeline's certified Asset and reads through ``read_for_consumer``:
the generation that triggered it, the consumer's ``max_staleness`` measured against this
run's logical date and its pinned feature version, all from the spec's ``consumers``.
"""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, task  # noqa: TID251 (a DAG file, not the core)

from pipelines.airflow import certified_asset

SPEC = Path(__file__).resolve().parent.parent / "fraud_features.yaml"

with DAG(
    dag_id="fraud_features_scoring",
    schedule=[certified_asset("fraud_features")],
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    tags=["lockstep", "fraud_features", "model"],
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
            card = read_for_consumer(spec, "fraud_features_scoring", "card_features", region, context)
            merchant = read_for_consumer(spec, "fraud_features_scoring", "merchant_features", region, context)
            # replace with your model: here, a z-score weighted by the merchant's risk score
            scores = card.join(merchant.select("merchant_id", "risk_score"), on="merchant_id", how="left").select(
                "txn_id", score=pl.col("amount_zscore").fill_null(0.0) * (1 + pl.col("risk_score").fill_null(0.0)))
            scored[region] = scores.select(pl.len()).collect().item()
        return scored

    score()
