"""The reconciliation benchmark's tables (not timed): parity tables A, B (differs) and C (A in
another order), written chunk by chunk, and one drift table per region, the last one drifting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

DRIFT_COLUMNS = ["amount", "amount_sum_1h", "amount_sum_24h", "amount_sum_7d", "amount_zscore",
                 "txn_count_24h", "txn_count_7d", "distinct_merchants_24h"]
KEY = "merchant_id"
CHUNK_ROWS = 5_000_000


def parity_chunk(c: int, lo: int, hi: int, total: int, seed: int) -> tuple[Any, Any, dict[str, int]]:
    """Rows lo..hi of A, and B's counterpart (changed, missing, extra rows), generated alike
    on every call."""
    import numpy as np
    import polars as pl

    rng = np.random.default_rng([seed, c])

    def frame(keys: np.ndarray, r: np.random.Generator) -> pl.DataFrame:
        n = len(keys)
        return pl.DataFrame({
            KEY: keys,
            "score": r.random(n),
            "amount": np.round(r.lognormal(3, 1, n), 2),
            "tier": r.choice(np.array(["low", "medium", "high"]), n),
            "name": pl.Series(r.integers(0, 10**9, n)).cast(pl.String).str.zfill(12),
            "updated": pl.Series(r.integers(1_700_000_000_000_000, 1_800_000_000_000_000, n)).cast(pl.Datetime("us", "UTC")),
            "active": r.random(n) < 0.9,
        })

    rows = hi - lo
    a = frame(np.arange(lo, hi, dtype=np.int64), rng)
    n_changed, n_missing, n_extra = rows // 1000, rows // 2000, rows // 2000
    pick = rng.permutation(rows)
    changed, missing = pick[:n_changed], pick[n_changed : n_changed + n_missing]
    score = a["score"].to_numpy().copy()
    score[changed] += 1.0
    keep = np.ones(rows, dtype=bool)
    keep[missing] = False
    extra = frame(np.arange(total + lo, total + lo + n_extra, dtype=np.int64), rng)
    b = pl.concat([a.with_columns(score=pl.Series(score)).filter(pl.Series(keep)), extra])
    return a, b, {"changed": n_changed, "missing": n_missing, "extra": n_extra}


def make_parity_tables(dir_: str, rows: int, seed: int = 11, copy: bool = True) -> dict[str, Any]:
    """A, B (differs) and C (A in another order), written chunk by chunk (bounded memory);
    other regions store rows in another order, so B and C are written in reverse chunk
    order, each chunk shuffled."""
    bounds = [(lo, min(rows, lo + CHUNK_ROWS)) for lo in range(0, rows, CHUNK_ROWS)]
    meta = {"changed": 0, "missing": 0, "extra": 0, "b_bytes_in_memory": 0}
    for c, (lo, hi) in enumerate(bounds):
        a, _, _ = parity_chunk(c, lo, hi, rows, seed)
        a.write_delta(f"{dir_}/a", mode="append")
    for c in reversed(range(len(bounds))):
        a, b, counts = parity_chunk(c, *bounds[c], rows, seed)
        for k, v in counts.items():
            meta[k] += v
        meta["b_bytes_in_memory"] += b.estimated_size()
        b.sample(fraction=1.0, shuffle=True, seed=seed + c).write_delta(f"{dir_}/b", mode="append")
        if copy:
            a.sample(fraction=1.0, shuffle=True, seed=seed + 7 * c).write_delta(f"{dir_}/c", mode="append")
    meta["b_bytes_on_disk"] = sum(p.stat().st_size for p in Path(f"{dir_}/b").glob("*.parquet"))
    return meta


def make_drift_tables(dir_: str, regions: int, rows: int, seed: int = 5) -> None:
    import numpy as np
    import polars as pl

    for i in range(regions):
        r = np.random.default_rng([seed, i])
        shift = 0.5 if i == regions - 1 else 0.0  # the last region drifts
        amount = np.round(np.exp(3.4 + shift + 0.8 * r.standard_normal(rows)), 2)
        c24 = r.poisson(3, rows).astype(np.int32)
        z = r.standard_normal(rows)
        z[r.random(rows) < 0.2] = np.nan
        pl.DataFrame({
            "amount": amount,
            "amount_sum_1h": amount * r.poisson(0.3, rows),
            "amount_sum_24h": amount * c24,
            "amount_sum_7d": amount * (c24 + r.poisson(12, rows)),
            "amount_zscore": pl.Series(z).fill_nan(None),
            "txn_count_24h": c24,
            "txn_count_7d": (c24 + r.poisson(12, rows)).astype(np.int32),
            "distinct_merchants_24h": np.minimum(c24, r.poisson(2, rows)).astype(np.int32),
        }).write_delta(f"{dir_}/region{i:02d}", mode="overwrite")
