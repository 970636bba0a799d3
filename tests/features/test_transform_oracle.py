"""The card transform computes its windows for the interval's rows only; this test keeps the
definition it replaced (every window rolled over the whole lookback, then filtered to the
interval) as a small reference and asserts the two give the same frame, bit for bit: counts,
distinct counts, and every float's bits (the evidence's row hashes and cross-region parity
depend on them), on adversarial frames."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from pipelines.features import FeatureContext
from pipelines.features.fraud import (
    CARD_FEATURE_COLUMNS,
    card_features,
    delivered_in,
    distinct_merchants,
)
from pipelines.spec import Interval

DAY = datetime(2026, 1, 8, tzinfo=UTC)


# ----------------------------------------------------------------------------- the old definition
def _old_distinct(tx: pl.DataFrame, period: timedelta) -> pl.Series:
    if tx.height == 0:
        return pl.Series("distinct_merchants_24h", [], dtype=pl.Int32)
    period_us = int(period.total_seconds() * 1_000_000)
    t = tx["event_time"].dt.epoch("us")
    t = t - t.min()
    span = int(t.max()) + period_us + 1  # type: ignore[arg-type]
    card = (tx["card_id"] != tx["card_id"].shift(1)).fill_null(True).cast(pl.Int64).cum_sum()
    pairs = pl.DataFrame({"c": card, "m": tx["merchant_id"], "t": t}).sort("c", "m", "t")
    same_pair = (pl.col("c") == pl.col("c").shift(-1)) & (pl.col("m") == pl.col("m").shift(-1))
    ends = pairs.select(
        key=pl.col("c") * span
        + pl.min_horizontal(pl.col("t") + period_us, pl.when(same_pair).then(pl.col("t").shift(-1)))
    )["key"].sort()
    queries = card * span + t
    counts = queries.search_sorted(queries, side="left") - ends.search_sorted(queries, side="left")
    return counts.cast(pl.Int32).alias("distinct_merchants_24h")


def _old_window(lf: pl.LazyFrame, period: str, aggs: list[pl.Expr]) -> pl.LazyFrame:
    return lf.rolling(index_column="event_time", period=period, closed="left", group_by="card_id").agg(aggs)


def old_card_features(inputs: dict[str, pl.LazyFrame], ctx: FeatureContext) -> pl.DataFrame:
    """Every window over every row of the lookback, then the interval's rows kept."""
    names = inputs["transactions"].collect_schema().names()
    parts = [c for c in ("hour", "minute") if c in names]
    sorted_tx = (
        inputs["transactions"]
        .select("txn_id", "card_id", "merchant_id", "amount", "event_time", "is_fraud", "ds", *parts)
        .sort("card_id", "event_time", maintain_order=True)
        .collect()
    )
    tx = sorted_tx.with_columns(_old_distinct(sorted_tx, timedelta(hours=24))).lazy()
    amount = pl.col("amount")
    w1h = _old_window(tx, "1h", [pl.len().alias("txn_count_1h"), amount.sum().alias("amount_sum_1h")])
    w24 = _old_window(tx, "24h", [pl.len().alias("txn_count_24h"), amount.sum().alias("amount_sum_24h")])
    w7d = _old_window(tx, "7d", [pl.len().alias("txn_count_7d"), amount.sum().alias("amount_sum_7d"),
                                 amount.mean().alias("_mean_7d"), amount.std().alias("_std_7d")])
    keys = ["card_id", "event_time"]
    out = pl.concat([tx, w1h.drop(keys), w24.drop(keys), w7d.drop(keys)], how="horizontal").with_columns(
        pl.col("amount_sum_1h", "amount_sum_24h", "amount_sum_7d").fill_null(0.0),
        pl.col("distinct_merchants_24h").cast(pl.Int32),
        pl.col("txn_count_1h", "txn_count_24h", "txn_count_7d").cast(pl.Int32),
        amount_zscore=pl.when((pl.col("txn_count_7d") >= 2) & (pl.col("_std_7d") > 0))
        .then((pl.col("amount") - pl.col("_mean_7d")) / pl.col("_std_7d"))
        .otherwise(None),
        first_seen_in_region=pl.col("txn_count_7d") == 0,
        feature_version=pl.lit(ctx.version),
    )
    return (
        out.filter(delivered_in(ctx.interval, ["event_time", "ds", *parts]))
        .select("txn_id", "card_id", "merchant_id", "event_time", "amount", "is_fraud",
                *CARD_FEATURE_COLUMNS, "feature_version", "ds")
        .collect()
    )


# ----------------------------------------------------------------------------- comparing bit for bit
def assert_identical(new: pl.DataFrame, old: pl.DataFrame) -> None:
    assert new.schema == old.schema
    assert new.height == old.height
    for name in old.columns:
        a, b = new[name], old[name]
        assert a.is_null().equals(b.is_null()), name
        a, b = a.drop_nulls(), b.drop_nulls()
        if a.dtype.is_float():
            bits_a = np.ascontiguousarray(a.to_numpy()).view(np.uint64)
            bits_b = np.ascontiguousarray(b.to_numpy()).view(np.uint64)
            differ = np.flatnonzero(bits_a != bits_b)
            assert differ.size == 0, (name, [(a[int(i)], b[int(i)]) for i in differ[:5]])
        else:
            assert a.equals(b), name


def both(tx: pl.DataFrame, interval: Interval) -> tuple[pl.DataFrame, pl.DataFrame]:
    ctx = FeatureContext(interval=interval, region="eu-west", version="1")
    new = card_features({"transactions": tx.lazy()}, ctx).collect()
    old = old_card_features({"transactions": tx.lazy()}, ctx)
    assert_identical(new, old)
    return new, old


# ----------------------------------------------------------------------------- adversarial frames
GRAINS = {"day": timedelta(days=1), "hour": timedelta(hours=1), "15m": timedelta(minutes=15)}


def delivered(tx: pl.DataFrame, grain: str) -> pl.DataFrame:
    """Partition columns of the interval each row was delivered in: by default its event
    time's, for rows marked ``_shift`` the one before or after (late or early rows, their
    event time a little outside their delivery interval)."""
    step = GRAINS[grain]
    at = pl.col("event_time").dt.truncate(f"{int(step.total_seconds())}s") + pl.col("_shift") * step
    cols = {"ds": at.dt.strftime("%Y-%m-%d")}
    if grain != "day":
        cols["hour"] = at.dt.strftime("%H")
    if grain == "15m":
        cols["minute"] = (at.dt.minute() // 15 * 15).cast(pl.String).str.zfill(2)
    return tx.with_columns(**cols).drop("_shift")


def adversarial(seed: int, grain: str, n: int = 1500, *, nulls: bool = True) -> pl.DataFrame:
    """Eight days and a bit of a few cards: times on a 15-minute grid (ties, and windows whose
    edge falls exactly on an event at t - 1h, t - 24h, t - 7d) plus a few off-grid seconds;
    amounts over eight orders of magnitude (rounding differs with the order of summation);
    cards seen only in the history, only in the last day, or throughout; a few rows late or
    early within a tolerance; nulls where the suite allows them (amount, is_fraud)."""
    rng = random.Random(seed)
    start = DAY - timedelta(days=8)
    rows = []
    for i in range(n):
        kind = rng.random()
        if kind < 0.15:
            card, day = 100 + rng.randrange(5), rng.randrange(0, 7)  # history only
        elif kind < 0.3:
            card, day = 200 + rng.randrange(5), 8  # the interval's day only
        else:
            card, day = rng.randrange(8), 8 if rng.random() < 0.5 else rng.randrange(0, 9)
        t = start + timedelta(days=day, minutes=15 * rng.randrange(0, 96))
        if rng.random() < 0.1:
            t += timedelta(seconds=rng.choice([1, 59, 3599]))
        magnitude = rng.choice([1e-3, 0.1, 1.0, 37.0, 1e3, 1e5])
        amount: float | None = round(rng.lognormvariate(0, 1.5) * magnitude, 2) + rng.random() * 1e-7
        if nulls and rng.random() < 0.05:
            amount = None
        fraud: bool | None = rng.random() < 0.05
        if nulls and rng.random() < 0.05:
            fraud = None
        rows.append({"txn_id": f"t{i:05d}", "card_id": card, "merchant_id": rng.randrange(6), "amount": amount,
                     "event_time": t, "is_fraud": fraud,
                     "_shift": rng.choice([-1, 1]) if rng.random() < 0.03 else 0})
    tx = pl.DataFrame(rows, schema_overrides={"amount": pl.Float64, "is_fraud": pl.Boolean})
    tx = tx.with_columns(pl.col("event_time").dt.cast_time_unit("us"))
    return delivered(tx, grain)


INTERVALS = [
    ("day", Interval.for_date(DAY.date())),
    ("hour", Interval.for_date(DAY.date(), "hour", 0)),
    ("hour", Interval.for_date(DAY.date(), "hour", 13)),
    ("hour", Interval.for_date(DAY.date(), "hour", 23)),
    ("15m", Interval.for_date(DAY.date(), "15m", 0, 0)),
    ("15m", Interval.for_date(DAY.date(), "15m", 5, 45)),
    ("15m", Interval.for_date(DAY.date(), "15m", 23, 45)),
]


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize(("grain", "interval"), INTERVALS, ids=[f"{g}-{iv.key}" for g, iv in INTERVALS])
def test_new_transform_equals_the_old_definition(seed: int, grain: str, interval: Interval) -> None:
    tx = adversarial(seed, grain)
    new, _ = both(tx, interval)
    assert new.height > 0, "the case has rows in the interval"


@pytest.mark.parametrize("seed", [4, 5])
def test_dense_history_many_summation_orders(seed: int) -> None:
    """Many events per card over the whole lookback: the rolling sums' running state is long,
    so a transform that started a card's sums later than the old one would differ in the last
    bits somewhere."""
    tx = adversarial(seed, "day", n=6000, nulls=False)
    new, old = both(tx, Interval.for_date(DAY.date()))
    assert new["txn_count_7d"].max() > 50  # type: ignore[operator]


def test_without_the_intervals_partition_columns_cut_by_event_time() -> None:
    """A daily-partitioned input read for an hourly interval: the rows are cut by event time."""
    tx = adversarial(6, "day")
    new, _ = both(tx, Interval.for_date(DAY.date(), "hour", 7))
    assert new.height > 0


def test_cards_only_in_history_or_only_in_the_interval() -> None:
    tx = adversarial(7, "day")
    new, _ = both(tx, Interval.for_date(DAY.date()))
    cards = set(new["card_id"])
    assert cards.isdisjoint(range(100, 105)), "history-only cards give no row"
    assert cards & set(range(200, 205)), "interval-only cards are there"
    only_new = new.filter(pl.col("card_id") >= 200).sort("event_time")
    assert only_new["first_seen_in_region"].any()


def test_edges_and_ties() -> None:
    """Events exactly 1 h, 24 h and 7 d before, and at the same instant as, the interval's rows."""
    t = DAY + timedelta(hours=12)
    times = [t - timedelta(days=7), t - timedelta(hours=24), t - timedelta(hours=1), t, t, t,
             t + timedelta(hours=1), t + timedelta(hours=1)]
    tx = pl.DataFrame({
        "txn_id": [f"e{i}" for i in range(len(times))], "card_id": [1] * len(times),
        "merchant_id": [1, 2, 1, 3, 3, 1, 2, 2], "amount": [0.1, 0.2, 0.3, 1e5, 1e-3, 7.0, 0.7, 3.3],
        "event_time": times, "is_fraud": [False] * len(times),
        "_shift": [0] * len(times),
    }).with_columns(pl.col("event_time").dt.cast_time_unit("us"))
    for grain, iv in [("day", Interval.for_date(DAY.date())), ("hour", Interval.for_date(DAY.date(), "hour", 12)),
                      ("15m", Interval.for_date(DAY.date(), "15m", 13, 0))]:
        both(delivered(tx, grain), iv)


@pytest.mark.parametrize("rows", [0, 1])
def test_empty_and_single_row(rows: int) -> None:
    tx = adversarial(8, "day", n=1).head(rows)
    for iv in [Interval.for_date(DAY.date()), Interval.for_date((DAY - timedelta(days=3)).date())]:
        both(tx, iv)


def test_empty_interval_with_history() -> None:
    tx = adversarial(9, "day").filter(pl.col("ds") != DAY.date().isoformat())
    new, _ = both(tx, Interval.for_date(DAY.date()))
    assert new.height == 0


def test_distinct_merchants_for_queries_equals_every_row() -> None:
    tx = adversarial(10, "day", nulls=False).sort("card_id", "event_time", maintain_order=True)
    mask = pl.Series([random.Random(3).random() < 0.3 for _ in range(tx.height)])
    every = distinct_merchants(tx, timedelta(hours=24))
    assert distinct_merchants(tx, timedelta(hours=24), mask).equals(every.filter(mask))


@pytest.mark.parametrize("merchants", ["int", "int-with-nulls", "string", "int32-negative"])
def test_merchant_id_types_and_nulls(merchants: str) -> None:
    """The (card, merchant) pairs are ordered through a packed integer key for integer ids
    without nulls, through two stable sorts otherwise: both give the old counts."""
    tx = adversarial(11, "day")
    m = pl.col("merchant_id")
    tx = tx.with_columns(merchant_id={
        "int": m,
        "int-with-nulls": pl.when(pl.col("txn_id").str.ends_with("7")).then(None).otherwise(m),
        "string": pl.format("m{}", m),
        "int32-negative": (m * 1_000_003 - 2_000_000).cast(pl.Int32),
    }[merchants])
    both(tx, Interval.for_date(DAY.date()))
    both(tx, Interval.for_date(DAY.date(), "hour", 9))
    ordered = tx.sort("card_id", "event_time", maintain_order=True)
    assert distinct_merchants(ordered, timedelta(hours=24)).equals(_old_distinct(ordered, timedelta(hours=24)))
