"""Reconciliation benchmark: parity digests and diff, and drift, as ratios to one polars scan.

Parity: two Delta tables of ``parity_rows`` rows (10M by default; a key and six columns of
mixed types), B = A with 0.1% of rows changed, 0.05% missing and 0.05% extra. Each phase runs
in a fresh process (wall time, peak RSS):

* **scan**: ``pl.scan_delta(uri).collect()`` of A, and of B - the reference;
* **digest**: read A and compute its stable row hashes and whole-table digest, what each
  region does where its data lives (ratio to scanning A). The answer to "in sync?" then
  crosses regions as 16 bytes; digests are not yet kept per table version, so every
  check pays this pass once per region;
* **diff**: the full parity diff of A and B through the digest tree (ratio to scanning A
  and B); bytes moved between the two sides, against the size of B.

Drift: ``regions`` x ``rows`` rows of 8 feature columns (floats, integer counts, nulls) in
one Delta table per region. **drift** reads the 8 columns of every region, bins them in one
pass and computes PSI and KS for each region against the pooled others (ratio to one scan of
the 12 tables); the binned KS is checked against the exact statistic.

Run alone: ``python -m pipelines.bench.reconcile [--rows N] [--parity-rows N]``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console

from pipelines.bench._measure import in_subprocess, measure_table

DRIFT_COLUMNS = ["amount", "amount_sum_1h", "amount_sum_24h", "amount_sum_7d", "amount_zscore",
                 "txn_count_24h", "txn_count_7d", "distinct_merchants_24h"]


# --------------------------------------------------------------------------- data (not timed)
def _make_parity_tables(dir_: str, rows: int, seed: int = 11) -> dict[str, Any]:
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(seed)
    n_changed, n_missing, n_extra = rows // 1000, rows // 2000, rows // 2000
    ids = np.arange(rows, dtype=np.int64)

    def frame(keys: np.ndarray, r: np.random.Generator) -> pl.DataFrame:
        n = len(keys)
        return pl.DataFrame({
            "merchant_id": keys,
            "score": r.random(n),
            "amount": np.round(r.lognormal(3, 1, n), 2),
            "tier": r.choice(np.array(["low", "medium", "high"]), n),
            "name": pl.Series(r.integers(0, 10**9, n)).cast(pl.String).str.zfill(12),
            "updated": pl.Series(r.integers(1_700_000_000_000_000, 1_800_000_000_000_000, n)).cast(pl.Datetime("us", "UTC")),
            "active": r.random(n) < 0.9,
        })

    a = frame(ids, rng)
    pick = rng.permutation(rows)
    changed, missing = pick[:n_changed], pick[n_changed : n_changed + n_missing]
    score = a["score"].to_numpy().copy()
    score[changed] += 1.0
    b = a.with_columns(score=pl.Series(score))
    keep = np.ones(rows, dtype=bool)
    keep[missing] = False
    b = pl.concat([b.filter(pl.Series(keep)), frame(np.arange(rows, rows + n_extra, dtype=np.int64), rng)])
    b = b.sample(fraction=1.0, shuffle=True, seed=seed)  # another region stores rows in another order
    a.write_delta(f"{dir_}/a", mode="overwrite")
    b.write_delta(f"{dir_}/b", mode="overwrite")
    size = sum(p.stat().st_size for p in Path(f"{dir_}/b").glob("*.parquet"))
    return {"changed": n_changed, "missing": n_missing, "extra": n_extra, "b_bytes_on_disk": size,
            "b_bytes_in_memory": b.estimated_size()}


def _make_drift_tables(dir_: str, regions: int, rows: int, seed: int = 5) -> None:
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


# --------------------------------------------------------------------------- timed phases
# each phase imports first and times only the work, so import costs never enter a ratio
def _scan(uris: list[str]) -> dict[str, Any]:
    import time

    import polars as pl

    t0 = time.perf_counter()
    rows = sum(pl.scan_delta(u).collect().height for u in uris)
    return {"seconds": time.perf_counter() - t0, "rows": rows}


def _digest(uri: str) -> dict[str, Any]:
    import time

    import polars as pl

    from pipelines.reconcile.parity import Side

    t0 = time.perf_counter()
    df = pl.read_delta(uri)
    side = Side(df, ["merchant_id"], [c for c in df.columns if c != "merchant_id"])
    return {"seconds": time.perf_counter() - t0, "rows": side.rows, "digest": hex(side.total)}


def _diff(uri_a: str, uri_b: str) -> dict[str, Any]:
    import time

    from pipelines.reconcile.diff import diff

    t0 = time.perf_counter()
    res = diff(uri_a, uri_b, keys=["merchant_id"])
    seconds = time.perf_counter() - t0
    js = res.as_json()
    return {"seconds": seconds, **{k: js[k] for k in ("rows_a", "rows_b", "only_in_a", "only_in_b", "changed",
                                                     "bytes_moved", "buckets_compared", "changed_columns")}}


def _drift(uris: list[str]) -> dict[str, Any]:
    import time

    import polars as pl

    from pipelines.reconcile.drift import binned_many, column_values, pooled_with_aside
    from pipelines.spec import DriftCheck

    check = DriftCheck(table="bench", columns={c: {"psi": 0.2, "ks": 0.1} for c in DRIFT_COLUMNS})
    t0 = time.perf_counter()
    values = [column_values(pl.scan_delta(u), DRIFT_COLUMNS) for u in uris]
    t_read = time.perf_counter() - t0
    out: dict[str, Any] = {"ks": {}, "psi": {}, "flagged": [], "aside": {}}
    all_counts = binned_many({c: [v[c] for v in values] for c in DRIFT_COLUMNS})
    for c in DRIFT_COLUMNS:
        counts = all_counts[c]
        comps, aside = pooled_with_aside(counts, check, 0.2, 0.1)
        out["ks"][c] = [comps[i].ks for i in range(len(uris))]
        out["psi"][c] = [comps[i].psi for i in range(len(uris))]
        out["aside"][c] = aside
        out["flagged"] += [f"region{i:02d}.{c}" for i, cp in comps.items() if cp.psi_fail or cp.ks_fail]
    out["seconds"] = time.perf_counter() - t0
    out["read_s"] = t_read
    return out


def _exact_ks(uris: list[str], aside: dict[str, list[int]]) -> dict[str, list[float]]:
    """Exact two-sample KS of each region against the same pool the binned pass used."""
    import numpy as np
    import polars as pl

    from pipelines.reconcile.drift import column_values

    values = [column_values(pl.scan_delta(u), DRIFT_COLUMNS) for u in uris]
    out: dict[str, list[float]] = {}
    for c in DRIFT_COLUMNS:
        keep = [i for i in range(len(uris)) if i not in aside[c]]
        allv = np.concatenate([v[c] for v in values]) + 0.0
        label = np.concatenate([np.full(len(v[c]), i) for i, v in enumerate(values)])
        order = np.argsort(allv, kind="stable")
        sv, sl = allv[order], label[order]
        last = np.r_[sv[1:] != sv[:-1], True]  # evaluate CDFs after the last of each tie
        in_pool = np.isin(sl, keep)
        pool_cum = np.cumsum(in_pool)
        res = []
        for i in range(len(uris)):
            mine = sl == i
            cm = np.cumsum(mine)
            other = pool_cum - np.cumsum(mine & in_pool)
            res.append(float(np.max(np.abs(cm[last] / cm[-1] - other[last] / other[-1]))))
        out[c] = res
    return out


# --------------------------------------------------------------------------- run
def run(*, rows: int, regions: int, console: Console | None = None, parity_rows: int = 10_000_000) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="lockstep-bench-rec-") as tmp:
        if console:
            console.print(f"[bold]reconcile bench[/]: writing 2 x {parity_rows:,} rows and {regions} x {rows:,} feature rows …")
        meta = in_subprocess(_make_parity_tables, tmp, parity_rows)["value"]
        ua, ub = f"{tmp}/a", f"{tmp}/b"
        scan_a = in_subprocess(_scan, [ua])
        scan_b = in_subprocess(_scan, [ub])
        digest = in_subprocess(_digest, ua)
        dif = in_subprocess(_diff, ua, ub)
        d_uris = [f"{tmp}/drift/region{i:02d}" for i in range(regions)]
        in_subprocess(_make_drift_tables, f"{tmp}/drift", regions, rows)
        scan_d = in_subprocess(_scan, d_uris)
        drift = in_subprocess(_drift, d_uris)
        exact = in_subprocess(_exact_ks, d_uris, drift["value"]["aside"])["value"]
    dv = dif["value"]
    ks_err = max(abs(a - b) for c in DRIFT_COLUMNS for a, b in zip(drift["value"]["ks"][c], exact[c], strict=True))
    result = {
        "parity_rows": parity_rows,
        "scan_a_s": round(scan_a["value"]["seconds"], 3),
        "scan_a_and_b_s": round(scan_a["value"]["seconds"] + scan_b["value"]["seconds"], 3),
        "digest_s": round(digest["value"]["seconds"], 3),
        "ratio_digest_to_scan": round(digest["value"]["seconds"] / scan_a["value"]["seconds"], 2),
        "diff_s": round(dif["value"]["seconds"], 3),
        "ratio_diff_to_scan": round(dif["value"]["seconds"] / (scan_a["value"]["seconds"] + scan_b["value"]["seconds"]), 2),
        "diff": dv,
        "expected": {k: meta[k] for k in ("changed", "missing", "extra")},
        "diff_correct": (dv["changed"], dv["only_in_a"], dv["only_in_b"]) == (meta["changed"], meta["missing"], meta["extra"]),
        "bytes_moved": dv["bytes_moved"],
        "table_bytes_on_disk": meta["b_bytes_on_disk"],
        "table_bytes_in_memory": meta["b_bytes_in_memory"],
        "bytes_moved_pct_of_disk": round(100 * dv["bytes_moved"] / meta["b_bytes_on_disk"], 3),
        "bytes_moved_pct_of_memory": round(100 * dv["bytes_moved"] / meta["b_bytes_in_memory"], 3),
        "in_sync_exchange_bytes": 16,
        "drift_regions": regions,
        "drift_rows_per_region": rows,
        "drift_columns": len(DRIFT_COLUMNS),
        "scan_drift_tables_s": round(scan_d["value"]["seconds"], 3),
        "drift_s": round(drift["value"]["seconds"], 3),
        "drift_read_s": round(drift["value"]["read_s"], 3),
        "ratio_drift_to_scan": round(drift["value"]["seconds"] / scan_d["value"]["seconds"], 2),
        "ks_max_abs_error": ks_err,
        "drift_flagged": drift["value"]["flagged"],
        "peak_rss_mib": {"scan_a": round(scan_a["peak_rss_mib"]), "digest": round(digest["peak_rss_mib"]),
                         "diff": round(dif["peak_rss_mib"]), "scan_drift": round(scan_d["peak_rss_mib"]),
                         "drift": round(drift["peak_rss_mib"])},
        "goals": {"ratio_digest_to_scan": 0.5, "ratio_diff_to_scan": 1.0, "ratio_drift_to_scan": 2.0,
                  "ks_max_abs_error": 1e-3, "bytes_moved_pct": 2.0},
    }
    if console:
        t = measure_table(f"reconcile: parity 2 x {parity_rows:,} rows; drift {regions} x {rows:,} rows x {len(DRIFT_COLUMNS)} columns")
        t.add_row("scan A (polars, one read)", f"{result['scan_a_s']:.2f} s", "")
        t.add_row("[bold]digest of A (read + hash) / scan", f"[bold]{result['ratio_digest_to_scan']}x", "<= 0.5x")
        t.add_row("  in sync? bytes exchanged per region", "16 bytes", "")
        t.add_row("[bold]full parity diff / scan A+B", f"[bold]{result['ratio_diff_to_scan']}x", "<= 1x")
        t.add_row("  found changed / missing / extra", f"{dv['changed']:,} / {dv['only_in_a']:,} / {dv['only_in_b']:,}",
                  "exact" if result["diff_correct"] else "[red]WRONG")
        t.add_row("[bold]bytes moved", f"[bold]{dv['bytes_moved'] / 2**20:.2f} MiB", "")
        t.add_row("  of B on disk / in memory", f"{result['bytes_moved_pct_of_disk']}% / {result['bytes_moved_pct_of_memory']}%", "<= 2%")
        t.add_row("scan of the drift tables", f"{result['scan_drift_tables_s']:.2f} s", "")
        t.add_row("[bold]PSI + KS, one binned pass / scan", f"[bold]{result['ratio_drift_to_scan']}x", "<= 2x")
        t.add_row("  KS max |binned - exact|", f"{ks_err:.2e}", "<= 1e-3")
        t.add_row("  flagged", ", ".join(result["drift_flagged"][:4]) or "-", "")
        for k, v in result["peak_rss_mib"].items():
            t.add_row(f"peak RSS: {k}", f"{v:,} MiB", "")
        console.print(t)
    return result


def main() -> None:
    import argparse
    import json

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000, help="feature rows per region (drift)")
    p.add_argument("--regions", type=int, default=12)
    p.add_argument("--parity-rows", type=int, default=10_000_000)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    res = run(rows=args.rows, regions=args.regions, parity_rows=args.parity_rows,
              console=None if args.json else Console())
    if args.json:
        print(json.dumps(res, indent=2, default=str))


if __name__ == "__main__":
    main()
