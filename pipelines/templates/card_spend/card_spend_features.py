"""card_spend's feature transform: daily spend per card, with a 7-day window.

The contract (see ``pipelines.features``): ``inputs["transactions"]`` holds the lookback
window (the interval's day and the 7 days before it); return the interval's rows only, with
``ds`` and ``feature_version`` columns, one row per ``card_id`` (the table's key).
"""

from __future__ import annotations

import polars as pl

from pipelines import FeatureContext


def card_daily(inputs: dict[str, pl.LazyFrame], ctx: FeatureContext) -> pl.LazyFrame:
    txns = inputs["transactions"]
    day = ctx.interval.ds
    week = txns.group_by("card_id").agg(
        txn_count_7d=pl.len().cast(pl.Int64),
        spend_7d=pl.col("amount").sum(),
        active_days_7d=pl.col("ds").n_unique().cast(pl.Int64),
    )
    today = (
        txns.filter(pl.col("ds") == day)
        .group_by("card_id")
        .agg(
            txn_count_1d=pl.len().cast(pl.Int64),
            spend_1d=pl.col("amount").sum(),
            max_amount_1d=pl.col("amount").max(),
            last_event_time=pl.col("event_time").max(),
        )
    )
    return (
        today.join(week, on="card_id", how="left")
        .with_columns(ds=pl.lit(day), feature_version=pl.lit(ctx.version))
        .sort("card_id")
    )
