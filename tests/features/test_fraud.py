"""Point-in-time correctness of the fraud features against a slow, obviously-correct reference."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from pipelines.features import FeatureContext
from pipelines.features.fraud import CARD_FEATURE_COLUMNS, card_features, merchant_features
from pipelines.spec import Interval

DAY = Interval.for_date("2026-01-08")


def random_transactions(seed: int, n: int = 400) -> pl.DataFrame:
    rng = random.Random(seed)
    start = DAY.start - timedelta(days=8)
    rows = []
    for i in range(n):
        # coarse times (whole 10-minute steps) so that ties at the same instant happen often
        t = start + timedelta(minutes=10 * rng.randrange(0, 9 * 144))
        rows.append({
            "txn_id": f"t{i:05d}", "card_id": rng.randrange(6), "merchant_id": rng.randrange(5),
            "amount": round(rng.lognormvariate(3, 1), 2), "event_time": t, "is_fraud": rng.random() < 0.05,
            "ds": t.date().isoformat(),
        })
    return pl.DataFrame(rows).with_columns(pl.col("event_time").dt.replace_time_zone("UTC").dt.cast_time_unit("us"))


def reference_card_features(tx: pl.DataFrame) -> dict[str, dict[str, object]]:
    """For each transaction of the interval, look at every other row: slow and plain."""
    rows = tx.to_dicts()
    out = {}
    for r in rows:
        if r["ds"] != DAY.ds:
            continue
        t = r["event_time"]

        def prior(window: timedelta, r: dict[str, object] = r, t: datetime = t) -> list[dict[str, object]]:
            return [o for o in rows if o["card_id"] == r["card_id"] and t - window <= o["event_time"] < t]

        h1, h24, d7 = prior(timedelta(hours=1)), prior(timedelta(hours=24)), prior(timedelta(days=7))
        amounts = [o["amount"] for o in d7]
        z = None
        if len(amounts) >= 2:
            mean = sum(amounts) / len(amounts)
            std = math.sqrt(sum((a - mean) ** 2 for a in amounts) / (len(amounts) - 1))
            z = (r["amount"] - mean) / std if std > 0 else None
        out[r["txn_id"]] = {
            "txn_count_1h": len(h1), "amount_sum_1h": sum(o["amount"] for o in h1),
            "txn_count_24h": len(h24), "amount_sum_24h": sum(o["amount"] for o in h24),
            "txn_count_7d": len(d7), "amount_sum_7d": sum(amounts),
            "distinct_merchants_24h": len({o["merchant_id"] for o in h24}),
            "amount_zscore": z, "first_seen_in_region": len(d7) == 0,
        }
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_card_features_match_reference(seed: int) -> None:
    tx = random_transactions(seed)
    ctx = FeatureContext(interval=DAY, region="eu-west", version="1")
    got = card_features({"transactions": tx.lazy()}, ctx).collect()
    expected = reference_card_features(tx)
    assert got.height == len(expected) > 0
    assert set(got["ds"].unique()) == {DAY.ds}
    for row in got.iter_rows(named=True):
        exp = expected[row["txn_id"]]
        for col in CARD_FEATURE_COLUMNS:
            a, b = row[col], exp[col]
            if b is None or a is None:
                assert a is None and b is None, (row["txn_id"], col, a, b)
            elif isinstance(b, float):
                assert a == pytest.approx(b, rel=1e-9, abs=1e-9), (row["txn_id"], col)
            else:
                assert a == b, (row["txn_id"], col, a, b)


def test_no_leakage_from_same_instant_or_future() -> None:
    t = datetime(2026, 1, 8, 12, tzinfo=UTC)
    tx = pl.DataFrame({
        "txn_id": ["a", "b", "c", "d"], "card_id": [1, 1, 1, 1], "merchant_id": [1, 2, 3, 4],
        "amount": [10.0, 20.0, 30.0, 1000.0],
        "event_time": [t - timedelta(minutes=30), t, t, t + timedelta(minutes=1)],
        "is_fraud": [False] * 4, "ds": [DAY.ds] * 4,
    }).with_columns(pl.col("event_time").dt.cast_time_unit("us"))
    got = card_features({"transactions": tx.lazy()}, FeatureContext(DAY, "eu-west", "1")).collect()
    by_id = {r["txn_id"]: r for r in got.iter_rows(named=True)}
    assert by_id["a"]["txn_count_1h"] == 0 and by_id["a"]["first_seen_in_region"]
    # b and c happen at the same instant: each sees only a, never the other
    assert by_id["b"]["txn_count_1h"] == 1 and by_id["b"]["amount_sum_1h"] == 10.0
    assert by_id["c"]["txn_count_1h"] == 1 and by_id["c"]["distinct_merchants_24h"] == 1
    # d sees a, b, c and nothing of its own amount
    assert by_id["d"]["txn_count_1h"] == 3 and by_id["d"]["amount_sum_1h"] == 60.0


def test_merchant_features_cover_risk_list_and_use_only_past() -> None:
    tx = random_transactions(5)
    late = pl.DataFrame({"txn_id": ["late"], "card_id": [1], "merchant_id": [0], "amount": [1e6],
                         "event_time": [DAY.end + timedelta(hours=1)], "is_fraud": [True], "ds": [DAY.ds]}
                        ).with_columns(pl.col("event_time").dt.cast_time_unit("us"))
    risk = pl.DataFrame({"merchant_id": list(range(7)), "mcc": [5411] * 7, "risk_score": [0.1] * 7,
                         "risk_tier": ["low"] * 7})
    inputs = {"transactions": pl.concat([tx, late], how="vertical_relaxed").lazy(), "merchant_risk": risk.lazy()}
    got = merchant_features(inputs, FeatureContext(DAY, "eu-west", "1")).collect()
    assert got["merchant_id"].to_list() == list(range(7))
    m0 = got.filter(pl.col("merchant_id") == 0).row(0, named=True)
    window = tx.filter((pl.col("merchant_id") == 0) & (pl.col("event_time") >= DAY.end - timedelta(days=7)))
    in_day = window.filter(pl.col("ds") == DAY.ds)
    assert m0["txn_count_1d"] == in_day.height
    assert m0["amount_sum_1d"] == pytest.approx(in_day["amount"].sum())
    assert m0["txn_count_7d"] == window.height, "the event after the interval's end is not counted"
    assert got.filter(pl.col("merchant_id") >= 5)["txn_count_7d"].to_list() == [0, 0]
