"""The flagship fraud feature set: card and merchant features, point-in-time correct.

Every feature of a transaction uses only the same card's events *strictly before* the
transaction's event time (windows are closed on the left and open on the right, so events
at the same instant never see each other). History reaches back the feature set's
``lookback`` (7 days in the flagship spec): counts, the z-score and the first-seen flag are
"within the lookback".

Intervals of any length (a day, an hour, 15 minutes): a transform returns exactly the rows
of its interval, and a feature's name says its window whatever the interval: ``_1d`` is the
day up to the interval's end, ``_7d`` seven days.

A transaction belongs to the interval it was *delivered* in (its partition: ``ds``, and
``hour`` / ``minute`` for sub-daily intervals), as a Delta table and an Airflow run see it,
not to the one its event time falls in: a row whose clock is a few seconds ahead, or one
late from the interval before, gets its feature row in its delivery interval, its windows
computed on its event time. How far outside its interval a row's event time may lie is the
table's ``event_time_tolerance``; validation quarantines a row further out ("event time
outside the delivery interval") before any feature is computed. For rows on time (every
row's event time inside its delivery interval) this is exactly "event time in
[start, end)". Inputs without partition columns are cut by event time.
"""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from pipelines.errors import FeatureError
from pipelines.features import FeatureContext
from pipelines.spec import Interval

CARD_FEATURE_COLUMNS = [
    "txn_count_1h", "amount_sum_1h", "txn_count_24h", "amount_sum_24h", "txn_count_7d",
    "amount_sum_7d", "distinct_merchants_24h", "amount_zscore", "first_seen_in_region",
]


def _window(lf: pl.LazyFrame, period: str, aggs: list[pl.Expr]) -> pl.LazyFrame:
    """Per-row aggregates of the same card's events in [t - period, t), in the frame's order."""
    return lf.rolling(index_column="event_time", period=period, closed="left", group_by="card_id").agg(aggs)


def distinct_merchants(tx: pl.DataFrame, period: timedelta, queries: pl.Series | None = None) -> pl.Series:
    """Distinct merchants of the same card in [t - period, t), for each row of ``tx`` (sorted
    by card, time), or only for the rows where the boolean mask ``queries`` is true: two
    binary searches per query instead of a set per window.

    Occurrence j of a (card, merchant) pair is the one that counts for a query at t exactly
    when t_j < t <= end_j = min(t_j + period, t_next), t_next being the pair's next
    occurrence. So the answer is #{j of the card: t_j < t} - #{j of the card: end_j < t}.
    With (card, time) packed into one sortable integer key, both counts are ``search_sorted``
    on sorted keys, and the card's offset cancels out of the difference. Rows older than the
    earliest query's window are in no query's window and change no count: they are left out.
    """
    period_us = int(period.total_seconds() * 1_000_000)
    if queries is not None and tx.height:
        t_all = tx["event_time"].dt.epoch("us")
        first = t_all.filter(queries).min()
        if first is None:
            tx = tx.clear()
        else:
            keep = (t_all >= int(first) - period_us).fill_null(False)  # type: ignore[arg-type]
            if not keep.all():
                tx, queries = tx.filter(keep), queries.filter(keep)
    if tx.height == 0:
        return pl.Series("distinct_merchants_24h", [], dtype=pl.Int32)
    t = tx["event_time"].dt.epoch("us")
    t = t - t.min()
    span = int(t.max()) + period_us + 1  # type: ignore[arg-type]
    card = (tx["card_id"] != tx["card_id"].shift(1)).fill_null(True).cast(pl.Int64).cum_sum()
    if int(card.max()) * span >= 2**62:  # type: ignore[arg-type]
        raise FeatureError("distinct_merchants: too many cards x too long a history for 64-bit keys")
    ends = _pair_ends(card, tx["merchant_id"], t, period_us, span)
    keys = card * span + t  # sorted, as tx is
    asked = keys if queries is None else keys.filter(queries)
    counts = keys.search_sorted(asked, side="left") - ends.search_sorted(asked, side="left")
    return counts.cast(pl.Int32).alias("distinct_merchants_24h")


def _pair_ends(card: pl.Series, merchant: pl.Series, t: pl.Series, period_us: int, span: int) -> pl.Series:
    """card * span + end_j of every occurrence j, sorted (see :func:`distinct_merchants`).
    The occurrences of a pair are put in (card, merchant, time) order from the frame's
    (card, time) one by a stable sort on one key: (card, merchant) packed into an integer
    when the merchant ids are integers without nulls, else two stable one-key sorts."""
    pairs = pl.DataFrame({"c": card, "m": merchant, "t": t})
    lo, hi = (merchant.min(), merchant.max()) if merchant.dtype.is_integer() else (None, None)
    width = None if lo is None or hi is None else int(hi) - int(lo) + 1  # type: ignore[arg-type]
    if (merchant.null_count() == 0 and width is not None and width < 2**31
            and int(card.max()) * width < 2**62 and merchant.dtype != pl.UInt64):  # type: ignore[arg-type]
        pairs = pairs.with_columns(m=pl.col("c") * width + (pl.col("m").cast(pl.Int64) - int(lo)))  # type: ignore[arg-type]
        pairs = pairs.select(pl.all().gather(pl.arg_sort_by("m", maintain_order=True)))
        same_pair = pl.col("m") == pl.col("m").shift(-1)
    else:
        pairs = pairs.sort("m", maintain_order=True).sort("c", maintain_order=True)
        same_pair = (pl.col("c") == pl.col("c").shift(-1)) & (pl.col("m") == pl.col("m").shift(-1))
    return pairs.select(
        key=pl.col("c") * span
        + pl.min_horizontal(pl.col("t") + period_us, pl.when(same_pair).then(pl.col("t").shift(-1)))
    )["key"].sort()


def history_of_queries(tx: pl.DataFrame, queries: pl.Series) -> pl.Series:
    """Which rows of ``tx`` (sorted by card, time) the windows of the rows ``queries`` (a
    boolean mask) need: every row of a card that has a query, up to the card's last query
    (a window looks back only). Rolling aggregates start afresh with each card, so over
    these rows a query's sums, means and deviations are bit for bit those over the whole
    frame, and the rows of cards without a query are never aggregated."""
    if tx.height == 0 or queries.all():
        return pl.Series("history", [True] * tx.height, dtype=pl.Boolean)
    run = tx["card_id"].rle_id()
    idx = pl.int_range(tx.height, dtype=pl.Int64, eager=True)
    nxt = idx.filter(queries)  # the query rows' positions, ascending
    # the first query at or after each row, and whether it is the same card's
    at = nxt.search_sorted(idx, side="left")
    has = at < nxt.len()
    target = nxt.gather(at.clip(upper_bound=max(nxt.len() - 1, 0))) if nxt.len() else idx
    return (has & (run.gather(target) == run)).alias("history")


def delivered_in(interval: Interval, columns: list[str]) -> pl.Expr:
    """Rows delivered in ``interval``: its partition values (``ds``; ``hour`` for intervals
    shorter than a day; ``minute`` for those shorter than an hour) where the input has those
    columns, else (no partition columns) an event time in [start, end)."""
    wanted = ["ds"]
    if interval.length < timedelta(days=1):
        wanted.append("hour")
    if interval.length < timedelta(hours=1):
        wanted.append("minute")
    if not all(c in columns for c in wanted):
        return pl.col("event_time").is_between(interval.start, interval.end, closed="left")
    values = interval.partition(wanted)
    return pl.all_horizontal([pl.col(c).cast(pl.String) == values[c] for c in wanted])


def card_features(inputs: dict[str, pl.LazyFrame], ctx: FeatureContext) -> pl.LazyFrame:
    """Per transaction delivered in the interval (see the module's note): counts and sums of
    the card's prior events over 1 h / 24 h / 7 d, distinct merchants in 24 h, the amount's
    z-score against the card's prior 7 days, and whether the card is new here (no event in 7
    days).

    The windows are computed for the interval's rows (the queries) only, against the sorted
    lookback: distinct merchants by binary search over the history their windows reach, the
    rolling sums over the rows of the queries' cards up to each card's last query
    (:func:`history_of_queries`), so that every value is bit for bit what rolling over the
    whole lookback gives."""
    names = inputs["transactions"].collect_schema().names()
    parts = [c for c in ("hour", "minute") if c in names]
    # every window reads the same sorted frame: materialise it once. Two stable one-key sorts
    # (time, then card) give exactly the order of one stable sort by (card, time), ties in
    # input order, at a quarter of the cost of the two-key sort
    sorted_tx = (
        inputs["transactions"]
        .select("txn_id", "card_id", "merchant_id", "amount", "event_time", "is_fraud", "ds", *parts)
        .collect()
        .sort("event_time", maintain_order=True)
        .sort("card_id", maintain_order=True)
    )
    queries = sorted_tx.select(
        delivered_in(ctx.interval, ["event_time", "ds", *parts]).fill_null(False).alias("q")
    ).to_series()
    history = history_of_queries(sorted_tx, queries)
    tx = sorted_tx
    if not history.all():
        tx, queries = sorted_tx.filter(history), queries.filter(history)
    distinct = distinct_merchants(tx, timedelta(hours=24), queries)
    lf = tx.lazy()
    w1h = _window(lf, "1h", [pl.len().alias("txn_count_1h"), pl.col("amount").sum().alias("amount_sum_1h")])
    w24 = _window(
        lf,
        "24h",
        [
            pl.len().alias("txn_count_24h"),
            pl.col("amount").sum().alias("amount_sum_24h"),
        ],
    )
    w7d = _window(
        lf,
        "7d",
        [
            pl.len().alias("txn_count_7d"),
            pl.col("amount").sum().alias("amount_sum_7d"),
            pl.col("amount").mean().alias("_mean_7d"),
            pl.col("amount").std().alias("_std_7d"),
        ],
    )
    keys = ["card_id", "event_time"]
    out = (
        pl.concat(
            # rolling keeps the frame's (card, time) order, so the windows line up row by row
            [lf, w1h.drop(keys), w24.drop(keys), w7d.drop(keys)],
            how="horizontal",
        )
        .filter(queries)
        .collect()
        .with_columns(distinct)
    )
    out = out.with_columns(
        # an empty window has no rows: rolling yields count 0 and a null sum
        pl.col("amount_sum_1h", "amount_sum_24h", "amount_sum_7d").fill_null(0.0),
        pl.col("distinct_merchants_24h").cast(pl.Int32),
        pl.col("txn_count_1h", "txn_count_24h", "txn_count_7d").cast(pl.Int32),
        amount_zscore=pl.when((pl.col("txn_count_7d") >= 2) & (pl.col("_std_7d") > 0))
        .then((pl.col("amount") - pl.col("_mean_7d")) / pl.col("_std_7d"))
        .otherwise(None),
        first_seen_in_region=pl.col("txn_count_7d") == 0,
        feature_version=pl.lit(ctx.version),
    )
    return out.lazy().select(
        "txn_id", "card_id", "merchant_id", "event_time", "amount", "is_fraud",
        *CARD_FEATURE_COLUMNS, "feature_version", "ds",
    )


def merchant_features(inputs: dict[str, pl.LazyFrame], ctx: FeatureContext) -> pl.LazyFrame:
    """Per merchant on the risk list (a merchant missing from it gets no row), as of the
    interval's end: activity over the day (the 24 hours to the interval's end, whatever the
    interval's length) and the last 7 days, distinct cards of the day, the fraud rate of the
    last 7 days, and the risk score."""
    end = ctx.interval.end
    day_start = end - timedelta(days=1)
    tx = inputs["transactions"].select("card_id", "merchant_id", "amount", "event_time", "is_fraud").filter(
        pl.col("event_time").is_between(end - timedelta(days=7), end, closed="left")
    )
    in_day = pl.col("event_time") >= day_start
    activity = tx.group_by("merchant_id").agg(
        txn_count_1d=in_day.sum().cast(pl.Int32),
        amount_sum_1d=pl.col("amount").filter(in_day).sum(),
        distinct_cards_1d=pl.col("card_id").filter(in_day).n_unique().cast(pl.Int32),
        txn_count_7d=pl.len().cast(pl.Int32),
        amount_mean_7d=pl.col("amount").mean(),
        fraud_rate_7d=pl.col("is_fraud").cast(pl.Float64).mean(),
    )
    risk = inputs["merchant_risk"].select("merchant_id", "mcc", "risk_score", "risk_tier")
    return (
        risk.join(activity, on="merchant_id", how="left")
        .with_columns(
            pl.col("txn_count_1d", "distinct_cards_1d", "txn_count_7d").fill_null(0),
            pl.col("amount_sum_1d").fill_null(0.0),
            feature_time=pl.lit(end).dt.cast_time_unit("us"),
            feature_version=pl.lit(ctx.version),
            ds=pl.lit(ctx.interval.ds),
        )
        .sort("merchant_id")
    )
