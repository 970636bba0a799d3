"""A deterministic generator of multi-region card transactions and merchant risk lists.

The same (seed, region, date) always yields the same rows, on any machine, so demos, tests
and benchmarks are repeatable. The shape is meant to look like card traffic:

* amounts are log-normal around a per-card spending level;
* merchant popularity is skewed (Zipf-like), so a few merchants see most transactions;
* ~3% of a region's transactions come from cards whose home is another region (travel);
* a small fraud rate (~0.2%), higher for travelling cards and large amounts.

The merchant risk list is *reference* data every region must hold identically: each
merchant's score changes every 30-90 days, so one day's snapshot differs from the
previous day's in ~2% of merchants - which is what a stale copy looks like.

Named faults (:class:`~pipelines.spec.FaultSpec`) bend the output for one region and date:
``drift``, ``stale_reference``, ``missing_partition``, ``duplicates``, ``schema_change``,
``late_rows`` (a share of the rows is not in the first delivery: the late data a re-run
picks up); ``corrupt_file`` applies when the generator writes files (:func:`export_files`).

Sub-daily intervals (:func:`for_interval`) are cuts of the day by event time, so 24 hourly
(or 96 quarter-hourly) deliveries hold exactly the day's rows; a fault with ``hours`` bends
only those hours.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from pipelines.spec import FaultSpec

CHANNELS = np.array(["pos", "ecom", "atm"])
CHANNEL_P = np.array([0.62, 0.33, 0.05])
MCCS = np.array([5411, 5812, 5999, 4111, 5541, 5311, 5732, 7011, 4511, 5912, 5651, 5942, 7995, 4829, 6011, 5961, 5993, 7832, 5691, 5200], dtype=np.int32)
CURRENCIES = {"eu": "EUR", "us": "USD", "ca": "CAD", "ap": "SGD", "sa": "BRL"}
TIERS = np.array(["low", "medium", "high"])
TRAVEL_RATE = 0.03
BASE_FRAUD_RATE = 0.002
LOG_AMOUNT_MEAN = 3.4
LOG_AMOUNT_SIGMA = 0.8
CARD_ID_STRIDE = 1_000_000_000

TRANSACTION_SCHEMA = pl.Schema({
    "txn_id": pl.String(),
    "card_id": pl.Int64(),
    "card_region": pl.String(),
    "merchant_id": pl.Int64(),
    "mcc": pl.Int32(),
    "amount": pl.Float64(),
    "currency": pl.String(),
    "channel": pl.String(),
    "event_time": pl.Datetime("us", "UTC"),
    "is_fraud": pl.Boolean(),
    "ds": pl.String(),
})


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a stable, vectorised integer hash (same on every machine)."""
    z = x.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        z += np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return z


def _unit(x: np.ndarray) -> np.ndarray:
    """Hash to a float in [0, 1)."""
    return (_mix64(x) >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng([seed, *key])


def _faults(faults: list[FaultSpec], kind: str, region: str, ds: date) -> list[FaultSpec]:
    return [f for f in faults if f.kind == kind and f.applies(region, ds)]


#: the share of an hour's rows a ``late_rows`` fault of magnitude 1 holds back
LATE_SHARE = 0.1


def _hold_back_late(df: pl.DataFrame, faults: list[FaultSpec], seed: int) -> pl.DataFrame:
    """Drop the rows a ``late_rows`` fault delays: a stable hash of the row picks them, within
    the fault's hours (every hour when it names none)."""
    if not faults or df.is_empty():
        return df
    pick = _unit(df["seq"].to_numpy().astype(np.uint64) + np.uint64(seed) * np.uint64(7919))
    hours = df["event_time"].dt.hour().to_numpy()
    keep = np.ones(df.height, dtype=bool)
    for f in faults:
        in_hours = np.isin(hours, f.hours) if f.hours else np.ones(df.height, dtype=bool)
        keep &= ~(in_hours & (pick < min(1.0, LATE_SHARE * f.magnitude)))
    df = df.filter(pl.Series(keep))
    return df


def cards_per_region(rows_per_region: int) -> int:
    return max(50, rows_per_region // 8)


def merchant_popularity(merchants: int) -> np.ndarray:
    ranks = np.arange(1, merchants + 1, dtype=np.float64)
    p = 1.0 / ranks**1.1
    return p / p.sum()


def transactions(
    region: str,
    ds: date,
    *,
    regions: list[str],
    rows: int,
    merchants: int = 2_000,
    seed: int = 7,
    faults: list[FaultSpec] | None = None,
) -> pl.DataFrame:
    """One region's card transactions for one day.

    >>> df = transactions("eu-west", date(2026, 1, 1), regions=["eu-west", "us-east"], rows=1000)
    >>> df.height, df["txn_id"].n_unique()
    (1000, 1000)
    """
    faults = faults or []
    r_idx = regions.index(region)
    day = ds.toordinal()
    if _faults(faults, "missing_partition", region, ds):
        return pl.DataFrame(schema=TRANSACTION_SCHEMA)
    rng = _rng(seed, r_idx, day, 1)
    n_cards = cards_per_region(rows)

    # cards: mostly local, some travelling in from another region
    travelling = rng.random(rows) < (TRAVEL_RATE if len(regions) > 1 else 0.0)
    home = np.full(rows, r_idx, dtype=np.int64)
    if travelling.any():
        other = rng.integers(0, len(regions) - 1, int(travelling.sum()))
        home[travelling] = other + (other >= r_idx)
    # a tenth of the cards (heavy users) make 40% of the transactions
    heavy = rng.random(rows) < 0.4
    local_id = np.where(heavy, rng.integers(0, max(1, n_cards // 10), rows), rng.integers(0, n_cards, rows))
    card_id = home * CARD_ID_STRIDE + local_id
    card_level = (_unit(card_id.astype(np.uint64)) - 0.5) * 1.4

    merchant_id = rng.choice(merchants, size=rows, p=merchant_popularity(merchants)).astype(np.int64)
    mcc = MCCS[(_mix64(merchant_id.astype(np.uint64)) % np.uint64(len(MCCS))).astype(np.int64)]
    log_amount = LOG_AMOUNT_MEAN + card_level + LOG_AMOUNT_SIGMA * rng.standard_normal(rows)
    for f in _faults(faults, "drift", region, ds):
        log_amount += f.magnitude * LOG_AMOUNT_SIGMA
    amount = np.round(np.exp(log_amount), 2)
    channel = CHANNELS[rng.choice(len(CHANNELS), size=rows, p=CHANNEL_P)]
    start = datetime(ds.year, ds.month, ds.day, tzinfo=UTC)
    offset_us = np.sort(rng.integers(0, 86_400_000_000, rows))
    fraud_p = BASE_FRAUD_RATE * np.where(travelling, 5.0, 1.0) * np.where(amount > 500, 3.0, 1.0)
    is_fraud = rng.random(rows) < fraud_p

    df = pl.DataFrame(
        {
            "seq": np.arange(rows, dtype=np.int64),
            "card_id": card_id,
            "home": home,
            "merchant_id": merchant_id,
            "mcc": mcc,
            "amount": amount,
            "channel": channel,
            "offset_us": offset_us,
            "is_fraud": is_fraud,
        }
    )
    late = _faults(faults, "late_rows", region, ds)
    region_names = pl.Series("regions", regions, dtype=pl.String)
    df = df.select(
        txn_id=pl.format("{}:{}:{}", pl.lit(region), pl.lit(ds.isoformat()), pl.col("seq").cast(pl.String).str.zfill(8)),
        card_id=pl.col("card_id"),
        card_region=pl.col("home").map_batches(lambda s: region_names.gather(s), return_dtype=pl.String),
        merchant_id=pl.col("merchant_id"),
        mcc=pl.col("mcc"),
        amount=pl.col("amount"),
        currency=pl.lit(CURRENCIES.get(region.split("-")[0], "USD")),
        channel=pl.col("channel"),
        event_time=pl.lit(start).dt.cast_time_unit("us") + pl.duration(microseconds=pl.col("offset_us")),
        is_fraud=pl.col("is_fraud"),
        ds=pl.lit(ds.isoformat()),
        seq=pl.col("seq"),
    )
    df = _hold_back_late(df, late, seed).drop("seq").cast(TRANSACTION_SCHEMA)  # type: ignore[arg-type]

    for f in _faults(faults, "duplicates", region, ds):
        n_dup = max(1, int(rows * 0.01 * f.magnitude))
        df = pl.concat([df, df.sample(n_dup, seed=seed, shuffle=True)]).sort("event_time")
    for _ in _faults(faults, "schema_change", region, ds):
        # an upstream release renamed a column and changed its type
        df = df.rename({"mcc": "merchant_category"}).with_columns(pl.col("merchant_category").cast(pl.String))
    return df


def for_interval(
    dataset: str, region: str, start: datetime, end: datetime, *, regions: list[str], rows: int,
    merchants: int = 2_000, seed: int = 7, faults: list[FaultSpec] | None = None,
) -> pl.DataFrame:
    """One region's delivery of ``dataset`` ('transactions' or 'merchant_risk') for the
    interval [start, end): for a day, the day's rows; for a shorter interval, the rows of its
    day whose event time falls in it, under the faults of its hour.

    >>> from datetime import UTC
    >>> hour = for_interval("transactions", "eu-west", datetime(2026, 1, 1, 5, tzinfo=UTC),
    ...                     datetime(2026, 1, 1, 6, tzinfo=UTC), regions=["eu-west"], rows=2400)
    >>> int(hour["event_time"].dt.hour().unique().item())
    5
    """
    ds = start.date()
    sub_daily = end - start < timedelta(days=1)
    bent = [f for f in faults or [] if f.applies(region, ds, start.hour if sub_daily else None)]
    if dataset == "merchant_risk":
        return merchant_risk(ds, merchants=merchants, seed=seed, region=region, faults=bent)
    day = transactions(region, ds, regions=regions, rows=rows, merchants=merchants, seed=seed, faults=bent)
    if not sub_daily:
        return day
    return day.filter(pl.col("event_time").is_between(start, end, closed="left"))


def merchant_risk(
    ds: date, *, merchants: int = 2_000, seed: int = 7, region: str | None = None,
    faults: list[FaultSpec] | None = None,
) -> pl.DataFrame:
    """The merchant risk list as published on ``ds`` (identical for every region).

    A ``stale_reference`` fault makes ``region`` hold the list of ``magnitude`` days earlier.
    """
    as_of = ds
    for f in _faults(faults or [], "stale_reference", region or "", ds):
        as_of = ds - timedelta(days=max(1, int(f.magnitude)))
    m = np.arange(merchants, dtype=np.uint64)
    salt = np.uint64(seed & 0xFFFFFFFF) << np.uint64(32)
    period = 30 + (_mix64(m ^ salt) % np.uint64(61)).astype(np.int64)  # 30..90 days
    phase = (_mix64(m + np.uint64(7) + salt) % np.uint64(97)).astype(np.int64)
    epoch = (as_of.toordinal() + phase) // period
    updated = epoch * period - phase  # the ordinal day the current score was published
    key = m * np.uint64(1_000_003) + epoch.astype(np.uint64) + salt
    score = np.round(_unit(key) ** 2.5, 4)  # most merchants low risk, a tail of risky ones
    tier = TIERS[np.searchsorted([0.3, 0.7], score, side="right")]
    mcc = MCCS[(_mix64(m.astype(np.uint64)) % np.uint64(len(MCCS))).astype(np.int64)]
    return pl.DataFrame(
        {
            "merchant_id": m.astype(np.int64),
            "mcc": mcc,
            "risk_score": score,
            "risk_tier": tier,
            "published": (updated - date(1970, 1, 1).toordinal()).astype(np.int32),
            "ds": np.full(merchants, ds.isoformat()),
        }
    ).with_columns(pl.col("published").cast(pl.Date))


def export_files(
    out_dir: str | Path,
    *,
    regions: list[str],
    dates: list[date],
    rows: int,
    merchants: int = 2_000,
    seed: int = 7,
    faults: list[FaultSpec] | None = None,
    fmt: str = "parquet",
) -> list[Path]:
    """Deliver transactions as files ``<out_dir>/<region>/<ds>.<fmt>`` (a landing zone).

    ``corrupt_file`` faults write bytes that no reader accepts in place of the file.
    """
    written: list[Path] = []
    for region in regions:
        for ds in dates:
            path = Path(out_dir) / region / f"{ds.isoformat()}.{fmt}"
            path.parent.mkdir(parents=True, exist_ok=True)
            if _faults(faults or [], "corrupt_file", region, ds):
                path.write_bytes(b"PAR1\x00\x13garbage-not-a-file" * 7)
            else:
                df = transactions(region, ds, regions=regions, rows=rows, merchants=merchants, seed=seed, faults=faults)
                if fmt == "parquet":
                    df.write_parquet(path)
                elif fmt == "csv":
                    df.write_csv(path)
                elif fmt == "jsonl":
                    df.write_ndjson(path)
                else:
                    raise ValueError(f"unknown format {fmt!r}")
            written.append(path)
    return written
