"""Sub-daily intervals (hourly, 15-minute) of the fraud features against a brute-force,
point-in-time reference: interval boundaries, the lookback the runner loads, late rows, and
no key in two partitions. The daily reference lives in test_fraud.py."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from pipelines.errors import FeatureError
from pipelines.features import FeatureContext
from pipelines.features.fraud import CARD_FEATURE_COLUMNS, card_features, merchant_features
from pipelines.runner import run_interval, transform
from pipelines.runner.steps import _lookback_values
from pipelines.spec import Interval, parse_spec, partition_columns, partition_key
from pipelines.storage import read_table, table_uri, table_version
from tests.conftest import REPO, small_spec_data

DAY = datetime(2026, 1, 8, tzinfo=UTC)
LOOKBACK = timedelta(days=7)


def random_transactions(seed: int, n: int = 500) -> pl.DataFrame:
    """Nine days of a few cards, on a 5-minute grid: ties at the same instant, and events
    exactly on hour and quarter-hour boundaries, are common."""
    rng = random.Random(seed)
    start = DAY - timedelta(days=8)
    rows = []
    for i in range(n):
        # half the events crowd the interval day, so that every hour has rows
        day = 8 if rng.random() < 0.5 else rng.randrange(0, 9)
        t = start + timedelta(days=day, minutes=5 * rng.randrange(0, 288))
        rows.append({
            "txn_id": f"t{i:05d}", "card_id": rng.randrange(5), "merchant_id": rng.randrange(6),
            "amount": round(rng.lognormvariate(3, 1), 2), "event_time": t, "is_fraud": rng.random() < 0.05,
        })
    return with_partitions(pl.DataFrame(rows).with_columns(pl.col("event_time").dt.cast_time_unit("us")))


def with_partitions(tx: pl.DataFrame) -> pl.DataFrame:
    et = pl.col("event_time")
    return tx.with_columns(ds=et.dt.strftime("%Y-%m-%d"), hour=et.dt.strftime("%H"),
                           minute=(et.dt.minute() // 15 * 15).cast(pl.String).str.zfill(2))


def loaded_for(tx: pl.DataFrame, interval: Interval, granularity: str) -> pl.DataFrame:
    """What the runner reads for ``interval``: the partitions ``_lookback_values`` names."""
    cols = partition_columns(granularity)
    keys = set(_lookback_values(interval, LOOKBACK, cols))
    part_keys = [partition_key(dict(zip(cols, v, strict=True))) for v in tx.select(cols).iter_rows()]
    return tx.filter(pl.Series([k in keys for k in part_keys]))


def reference_card(tx: pl.DataFrame, interval: Interval) -> dict[str, dict[str, object]]:
    """Every transaction in [start, end), each compared with every row: slow and plain."""
    rows = tx.to_dicts()
    out = {}
    for r in rows:
        t = r["event_time"]
        if not interval.start <= t < interval.end:
            continue

        def prior(w: timedelta, r: dict[str, object] = r, t: datetime = t) -> list[dict[str, object]]:
            return [o for o in rows if o["card_id"] == r["card_id"] and t - w <= o["event_time"] < t]

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


def assert_matches(got: pl.DataFrame, expected: dict[str, dict[str, object]]) -> None:
    assert sorted(got["txn_id"]) == sorted(expected), "exactly the interval's rows"
    for row in got.iter_rows(named=True):
        exp = expected[row["txn_id"]]
        for col in CARD_FEATURE_COLUMNS:
            a, b = row[col], exp[col]
            if a is None or b is None:
                assert a is None and b is None, (row["txn_id"], col, a, b)
            elif isinstance(b, float):
                assert a == pytest.approx(b, rel=1e-9, abs=1e-9), (row["txn_id"], col)
            else:
                assert a == b, (row["txn_id"], col, a, b)


def card(tx: pl.DataFrame, interval: Interval, granularity: str) -> pl.DataFrame:
    ctx = FeatureContext(interval=interval, region="eu-west", version="1")
    return card_features({"transactions": loaded_for(tx, interval, granularity).lazy()}, ctx).collect()


# intervals of the day that sit on boundaries: midnight, a mid-day hour, the last one
HOURS = [0, 5, 13, 23]
QUARTERS = [(0, 0), (5, 0), (5, 15), (5, 45), (23, 45)]


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("hour", HOURS)
def test_hourly_card_features_match_reference(seed: int, hour: int) -> None:
    tx = random_transactions(seed)
    iv = Interval.for_date(DAY.date(), "hour", hour)
    expected = reference_card(tx, iv)
    assert expected, "the case has rows in the interval"
    assert_matches(card(tx, iv, "hour"), expected)


@pytest.mark.parametrize("seed", [3, 4])
@pytest.mark.parametrize(("hour", "minute"), QUARTERS)
def test_quarter_hour_card_features_match_reference(seed: int, hour: int, minute: int) -> None:
    tx = random_transactions(seed, n=800)
    iv = Interval.for_date(DAY.date(), "15m", hour, minute)
    expected = reference_card(tx, iv)
    assert_matches(card(tx, iv, "15m"), expected)


@pytest.mark.parametrize("granularity", ["hour", "15m"])
def test_sub_daily_intervals_partition_the_day_without_duplicates(granularity: str) -> None:
    """Every interval of the day together: each transaction of the day exactly once, with the
    values the daily interval computes (a row on a boundary belongs to the later interval)."""
    tx = random_transactions(5)
    day = Interval.for_date(DAY.date())
    daily = card(tx, day, "day").sort("txn_id")
    n = int(day.length / Interval.for_date(DAY.date(), granularity).length)
    parts = []
    for i in range(n):
        iv = Interval.containing(day.start + i * (day.length / n), granularity)
        got = card(tx, iv, granularity)
        assert got["event_time"].is_between(iv.start, iv.end, closed="left").all(), iv.key
        parts.append(got)
    together = pl.concat(parts).sort("txn_id")
    assert together["txn_id"].is_unique().all(), "no key in two intervals"
    assert_frame_equal(together.select(daily.columns), daily, check_exact=False, rel_tol=1e-9, abs_tol=1e-9)


def test_lookback_loads_only_the_partitions_it_needs() -> None:
    iv = Interval.for_date("2026-01-08", "hour", 5)
    keys = _lookback_values(iv, LOOKBACK, ["ds", "hour"])
    assert keys[0] == "2026-01-01T05" and keys[-1] == "2026-01-08T05" and len(keys) == 7 * 24 + 1
    q = Interval.for_date("2026-01-08", "15m", 5, 30)
    qkeys = _lookback_values(q, timedelta(hours=1), ["ds", "hour", "minute"])
    assert qkeys == ["2026-01-08T04:30", "2026-01-08T04:45", "2026-01-08T05:00", "2026-01-08T05:15",
                     "2026-01-08T05:30"]
    assert _lookback_values(q, timedelta(0), ["ds", "hour", "minute"]) == ["2026-01-08T05:30"]
    day = Interval.for_date("2026-01-08")
    assert _lookback_values(day, LOOKBACK) == [f"2026-01-0{d}" for d in range(1, 9)]


def test_late_rows_reach_their_interval_on_rerun_only() -> None:
    """Rows of 05:00-06:00 that arrive after 05 and 06 were computed: re-running 05 with them
    matches the reference over everything; 06, not re-run, keeps what was known when it ran
    (the reference without the late rows)."""
    tx = random_transactions(6)
    h5, h6 = (Interval.for_date(DAY.date(), "hour", h) for h in (5, 6))
    in_h5 = pl.col("event_time").is_between(h5.start, h5.end, closed="left")
    late = tx.filter(in_h5 & (pl.col("txn_id").str.slice(-1).is_in(["1", "4", "7"])))
    assert late.height > 0
    on_time = tx.join(late.select("txn_id"), on="txn_id", how="anti")
    first_6 = card(on_time, h6, "hour")
    assert_matches(first_6, reference_card(on_time, h6))
    assert_matches(card(tx, h5, "hour"), reference_card(tx, h5))
    assert_matches(first_6, reference_card(on_time, h6))  # unchanged: 06 is not rewritten


def test_merchant_day_columns_cover_a_day_in_hourly_pipelines() -> None:
    tx = random_transactions(7)
    iv = Interval.for_date(DAY.date(), "hour", 5)
    risk = pl.DataFrame({"merchant_id": [0, 1, 2, 3], "mcc": [1, 1, 1, 1], "risk_score": [0.1, 0.2, 0.3, 0.4],
                         "risk_tier": ["low"] * 4})
    ctx = FeatureContext(interval=iv, region="eu-west", version="1")
    got = merchant_features({"transactions": loaded_for(tx, iv, "hour").lazy(), "merchant_risk": risk.lazy()},
                            ctx).collect()
    assert sorted(got["merchant_id"]) == [0, 1, 2, 3], "merchants missing from the risk list get no row"
    rows = tx.to_dicts()
    for r in got.iter_rows(named=True):
        day = [o for o in rows if o["merchant_id"] == r["merchant_id"] and iv.end - timedelta(days=1) <= o["event_time"] < iv.end]
        week = [o for o in rows if o["merchant_id"] == r["merchant_id"] and iv.end - timedelta(days=7) <= o["event_time"] < iv.end]
        assert r["txn_count_1d"] == len(day)
        assert r["amount_sum_1d"] == pytest.approx(sum(o["amount"] for o in day))
        assert r["distinct_cards_1d"] == len({o["card_id"] for o in day})
        assert r["txn_count_7d"] == len(week)
    assert got["txn_count_1d"].sum() > tx.filter(pl.col("event_time").is_between(iv.start, iv.end, closed="left")).height


# --------------------------------------------------------------------------- on real Delta
def sub_daily_spec(granularity: str, rows: int, regions: int = 1, **overrides: object):  # type: ignore[no-untyped-def]
    data = small_spec_data(regions, rows, **overrides)
    data["granularity"] = granularity
    data["schedule"] = "@hourly" if granularity == "hour" else f"*/{granularity[:-1]} * * * *"
    for t in data["tables"]:
        t["partition_by"] = partition_columns(granularity)
    return parse_spec(data, "test-spec").with_path(REPO / "dags" / "fraud_features.yaml")


def test_quarter_hour_runs_write_each_interval_once(root: str) -> None:
    spec = sub_daily_spec("15m", rows=2400, validation={"enabled": False})
    region = spec.regions[0]
    ivs = [Interval.for_date("2026-01-01", "15m", 5, m) for m in (0, 15, 30, 45)]
    for iv in ivs:
        run = run_interval(spec, iv, root=root)
        assert run.decision is not None and run.decision.certified, run.decision and run.decision.reasons
    uri = table_uri(root, spec.name, region, "features", "card_features")
    feats = read_table(uri).collect()
    assert feats["txn_id"].is_unique().all()
    assert sorted(set(feats["minute"])) == ["00", "15", "30", "45"] and set(feats["hour"]) == {"05"}
    raw = read_table(table_uri(root, spec.name, region, "raw", "transactions")).collect()
    assert sorted(feats["txn_id"]) == sorted(raw["txn_id"])
    for frame in (feats, raw):
        quarter = frame.select(m=(pl.col("event_time").dt.minute() // 15 * 15).cast(pl.String).str.zfill(2))["m"]
        assert (quarter == frame["minute"]).all(), "every row sits in its own interval's partition"
    version = table_version(uri)
    run_interval(spec, ivs[1], root=root)  # an unchanged interval again: nothing written
    assert table_version(uri) == version


def test_rows_outside_the_interval_are_an_error_and_never_written(root: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "leaky.py").write_text(
        "import polars as pl\n"
        "def whole_day(inputs, ctx):\n"
        "    tx = inputs['transactions']\n"  # the old bug: the interval's ds, every hour of it
        "    return tx.filter(pl.col('ds') == ctx.interval.ds).select('txn_id', 'event_time', 'ds')\n")
    spec = sub_daily_spec("hour", rows=2400, validation={"enabled": False})
    data = spec.model_dump(mode="json")
    data["features"] = [dict(data["features"][0], transform="leaky.py:whole_day")]
    data["features"][0]["lookback"] = "1h"
    leaky = parse_spec(data, "leaky").with_path(tmp_path / "leaky.yaml")
    region = leaky.regions[0]
    for hour in (0, 1):
        iv = Interval.for_date("2026-01-01", "hour", hour)
        from pipelines.runner import ingest

        ingest(leaky, iv, region, root=root)
    with pytest.raises(FeatureError, match=r"outside its interval 2026-01-01T01: \d+ row\(s\) with event_time outside"):
        transform(leaky, Interval.for_date("2026-01-01", "hour", 1), region, root=root)
    assert table_version(table_uri(root, leaky.name, region, "features", "card_features")) is None
