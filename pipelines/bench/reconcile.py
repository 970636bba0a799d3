"""Reconciliation benchmark: row hash, parity diff (with DuckDB beside it), drift, as ratios
to one polars scan, every figure from interleaved runs (:func:`pipelines.bench._measure.interleaved`).

Parity: two Delta tables of ``parity_rows`` rows (10M by default; a key and six columns of
mixed types), B = A with 0.1% of rows changed, 0.05% missing and 0.05% extra, in another row
order; C = A in another row order (in sync). Phases, each in a fresh process:

* **L1**: ``pl.scan_delta(uri).collect()`` of both tables - the reference;
* **row hash**: ``lockstep-rowhash-1`` (key and row hash) of A already in memory, against
  one scan of A;
* **digest**: read A and hash it as it streams (what a region does when it profiles);
* **diff** / **diff in sync**: ``lockstep diff A B`` / ``A C`` (read, hash, digest tree,
  naming every differing key and column), against L1;
* **DuckDB**: a full outer join of the same parquet files on the key with
  ``IS DISTINCT FROM`` on every column, fetching the differing keys and their kind.

``scale`` repeats L1, diff and DuckDB at other sizes (tables generated in chunks on disk,
deleted after), for time and peak RSS against rows.

Drift: ``regions`` x ``rows`` rows of 8 feature columns in one Delta table per region.
**drift** reads the 8 columns of every region, bins them in one pass and computes PSI and KS
of each region against the pooled others (ratio to one scan of the tables); **gate drift**
does the same from the regions' published cell histograms (what the gate reads), with the
binned KS checked against the exact statistic.

Run alone: ``python -m pipelines.bench.reconcile [--rows N] [--parity-rows N] [--scale N ...]``.
"""

from __future__ import annotations

import shutil
import tempfile
from typing import Any

from rich.console import Console

from pipelines.bench._measure import (
    figure,
    in_subprocess,
    interleaved,
    mark_baseline,
    print_figures,
    ratio_figure,
)
from pipelines.bench.reconcile_data import DRIFT_COLUMNS, KEY, make_drift_tables, make_parity_tables


# --------------------------------------------------------------------------- timed phases
# each phase imports first (then marks the RSS baseline) and times only its work
def _scan(uris: list[str]) -> dict[str, Any]:
    import time

    import polars as pl

    mark_baseline()
    t0 = time.perf_counter()
    rows = sum(pl.scan_delta(u).collect().height for u in uris)
    return {"seconds": time.perf_counter() - t0, "rows": rows}


def _row_hash(uri: str) -> dict[str, Any]:
    import time

    import polars as pl

    from pipelines.evidence.hashing import hashes, warm_up

    df = pl.read_delta(uri)
    warm_up()  # load the compiled kernels outside the timing (reported apart)
    mark_baseline()
    t0 = time.perf_counter()
    kh, rh = hashes(df, [KEY], df.columns)
    return {"seconds": time.perf_counter() - t0, "rows": len(kh)}


def _digest(uri: str) -> dict[str, Any]:
    import time

    import pipelines.reconcile.diff as D
    from pipelines.evidence.hashing import warm_up
    from pipelines.reconcile.sides import StreamSide

    warm_up()
    mark_baseline()
    t0 = time.perf_counter()
    source = D.open_source(uri)
    assert source is not None
    side = StreamSide(source.batches, source.schema, [KEY], [c for c in source.schema if c != KEY],
                      rows_hint=source.rows, keep_values=False, hash_budget=D.MEMORY_BUDGET // 4)
    seconds = time.perf_counter() - t0
    side.close()
    return {"seconds": seconds, "rows": side.rows, "digest": hex(side.total)}


def _diff(uri_a: str, uri_b: str) -> dict[str, Any]:
    import time

    from pipelines.evidence.hashing import warm_up
    from pipelines.reconcile.diff import diff

    warm_up()
    mark_baseline()
    t0 = time.perf_counter()
    res = diff(uri_a, uri_b, keys=[KEY])
    seconds = time.perf_counter() - t0
    js = res.as_json()
    return {"seconds": seconds, **{k: js[k] for k in ("rows_a", "rows_b", "only_in_a", "only_in_b", "changed",
                                                     "bytes_moved", "buckets_compared", "changed_columns")}}


def _warm_up() -> dict[str, Any]:
    """The one-off cost of a fresh process' first hash or binning: loading the compiled
    kernels (from numba's on-disk cache)."""
    import time

    import numpy as np

    import pipelines.reconcile.diff  # noqa: F401
    from pipelines.evidence.hashing import warm_up
    from pipelines.reconcile.drift import binned

    t0 = time.perf_counter()
    warm_up()
    binned([np.linspace(-1.0, 1.0, 1 << 18), np.zeros(1)])  # the drift kernels
    return {"seconds": time.perf_counter() - t0}


def _duckdb(uri_a: str, uri_b: str) -> dict[str, Any]:
    """The peer: DuckDB's full outer join on the key, every column compared with IS DISTINCT
    FROM, the differing keys and their kind fetched as Arrow."""
    import time

    import duckdb
    from deltalake import DeltaTable

    fa, fb = DeltaTable(uri_a).file_uris(), DeltaTable(uri_b).file_uris()
    con = duckdb.connect()
    cols = [c for c in DeltaTable(uri_a).schema().to_arrow().names if c != KEY]  # type: ignore[attr-defined]
    distinct = " OR ".join(f"a.{c} IS DISTINCT FROM b.{c}" for c in cols)
    sql = f"""
        SELECT coalesce(a.{KEY}, b.{KEY}) AS {KEY},
               CASE WHEN b.{KEY} IS NULL THEN 'only_in_a' WHEN a.{KEY} IS NULL THEN 'only_in_b' ELSE 'changed' END AS kind
        FROM read_parquet($fa) a FULL OUTER JOIN read_parquet($fb) b ON a.{KEY} = b.{KEY}
        WHERE a.{KEY} IS NULL OR b.{KEY} IS NULL OR {distinct}"""
    mark_baseline()
    t0 = time.perf_counter()
    out = con.sql(sql, params={"fa": fa, "fb": fb}).to_arrow_table()
    seconds = time.perf_counter() - t0
    assert out is not None
    kinds = out.column("kind").value_counts().to_pylist()
    counts = {d["values"]: d["counts"] for d in kinds}
    return {"seconds": seconds, "only_in_a": counts.get("only_in_a", 0), "only_in_b": counts.get("only_in_b", 0),
            "changed": counts.get("changed", 0)}


def _drift(uris: list[str]) -> dict[str, Any]:
    import time

    import polars as pl

    from pipelines.reconcile.drift import binned_many, column_values, pooled_with_aside
    from pipelines.spec import DriftCheck

    check = DriftCheck(table="bench", columns={c: {"psi": 0.2, "ks": 0.1} for c in DRIFT_COLUMNS})
    _warm_up()  # load the compiled binning kernels outside the timing (reported apart)
    mark_baseline()
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


def _gate_drift(uris: list[str]) -> dict[str, Any]:
    """What the gate does: drift from the regions' published cell histograms (computed here,
    untimed, as each region does when it profiles its table version)."""
    import time

    import polars as pl

    from pipelines.evidence.profile import _hist
    from pipelines.reconcile.drift import dense, pooled_with_aside
    from pipelines.spec import DriftCheck

    check = DriftCheck(table="bench", columns={c: {"psi": 0.2, "ks": 0.1} for c in DRIFT_COLUMNS})
    hists = []
    for u in uris:
        frame = pl.read_delta(u)
        hists.append({c: _hist(frame, c) for c in DRIFT_COLUMNS})
    mark_baseline()
    t0 = time.perf_counter()
    ks: dict[str, list[float]] = {}
    for c in DRIFT_COLUMNS:
        comps, _ = pooled_with_aside(dense([[h[c]] for h in hists]), check, 0.2, 0.1)
        ks[c] = [comps[i].ks for i in range(len(uris))]
    return {"seconds": time.perf_counter() - t0, "ks": ks}


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
def _parity(tmp: str, rows: int, reps: int, full: bool, console: Console | None) -> dict[str, Any]:
    if console:
        console.print(f"[bold]reconcile bench[/]: writing 3 x {rows:,} rows …")
    meta = in_subprocess(make_parity_tables, tmp, rows, 11, full)["value"]
    ua, ub, uc = f"{tmp}/a", f"{tmp}/b", f"{tmp}/c"
    phases: dict[str, Any] = {"L1": (_scan, ([ua, ub],)), "diff": (_diff, (ua, ub)), "duckdb": (_duckdb, (ua, ub))}
    if full:
        phases |= {"L1 sync": (_scan, ([ua, uc],)), "diff sync": (_diff, (ua, uc)), "duckdb sync": (_duckdb, (ua, uc)),
                   "scan A": (_scan, ([ua],)), "row hash A": (_row_hash, (ua,)), "digest A": (_digest, (ua,))}
    if console:
        console.print(f"  {len(phases)} phases x {reps} interleaved runs …")
    m = interleaved(phases, reps)
    for u in (ua, ub, uc):
        shutil.rmtree(u, ignore_errors=True)
    return {"rows": rows, "meta": meta, "m": m}


def run(*, rows: int, regions: int, console: Console | None = None, parity_rows: int = 10_000_000,
        scale: list[int] | None = None, reps: int = 3) -> dict[str, Any]:
    figures: list[dict[str, Any]] = []
    scale_out: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="lockstep-bench-rec-") as tmp:
        p: dict[str, Any] = {}
        m: dict[str, Any] = {}
        meta: dict[str, Any] = {}
        if parity_rows:
            p = _parity(f"{tmp}/parity", parity_rows, reps, True, console)
            m, meta = p["m"], p["meta"]
            dv, duck = m["diff"]["value"], m["duckdb"]["value"]
            expected = (meta["changed"], meta["missing"], meta["extra"])
            correct = (dv["changed"], dv["only_in_a"], dv["only_in_b"]) == expected
            duck_ok = (duck["changed"], duck["only_in_a"], duck["only_in_b"]) == expected
            n = f"{parity_rows / 1e6:g}M"
            figures += [
                ratio_figure(f"row hash (lockstep-rowhash-1), {n} rows in memory / one scan", m["row hash A"], m["scan A"],
                             "polars scan of A", 1.0),
                ratio_figure(f"digest of A (read + hash, streaming), {n} rows / one scan", m["digest A"], m["scan A"],
                             "polars scan of A", None),
                ratio_figure(f"diff, 2 x {n} rows, 0.2% differ / L1", m["diff"], m["L1"], "L1: polars scan of A and B", 1.0,
                             exact=correct, peak_rss_above_imports_mib=m["diff"]["rss_above_baseline_mib"]),
                ratio_figure(f"DuckDB full outer join diff, 2 x {n} rows / L1", m["duckdb"], m["L1"],
                             "L1: polars scan of A and B", None, exact=duck_ok,
                             peak_rss_above_imports_mib=m["duckdb"]["rss_above_baseline_mib"]),
                ratio_figure(f"diff / DuckDB, 2 x {n} rows (same run)", m["diff"], m["duckdb"], "DuckDB full outer join",
                             1.0),
                ratio_figure(f"diff in sync, 2 x {n} rows / L1", m["diff sync"], m["L1 sync"], "L1: polars scan of A and C",
                             1.0),
                ratio_figure(f"DuckDB in sync, 2 x {n} rows / L1", m["duckdb sync"], m["L1 sync"],
                             "L1: polars scan of A and C", None),
                figure(f"diff bytes moved between sides, {n}", dv["bytes_moved"] / 2**20, "MiB",
                       "B on disk", dv["bytes_moved"] / meta["b_bytes_on_disk"], "<= 2% of B on disk",
                       dv["bytes_moved"] <= 0.02 * meta["b_bytes_on_disk"]),
            ]
        warm = interleaved({"warm-up": (_warm_up, ())}, reps)["warm-up"]
        figures.append(figure("kernel warm-up, once per process (not in the ratios above)", warm["median_s"], "s",
                              "", None, None, None, runs_s=warm["runs_s"]))
        for size in scale or []:
            if size == parity_rows and p:
                s = p
            else:
                s = _parity(f"{tmp}/scale{size}", size, reps, False, console)
            sm = s["m"]
            sv = sm["diff"]["value"]
            ok = (sv["changed"], sv["only_in_a"], sv["only_in_b"]) == (s["meta"]["changed"], s["meta"]["missing"],
                                                                    s["meta"]["extra"])
            scale_out.append({
                "rows": size, "L1_s": sm["L1"]["median_s"], "diff_s": sm["diff"]["median_s"],
                "duckdb_s": sm["duckdb"]["median_s"], "diff_runs_s": sm["diff"]["runs_s"],
                "diff_peak_rss_mib": sm["diff"]["peak_rss_mib"], "diff_rss_above_imports_mib": sm["diff"]["rss_above_baseline_mib"],
                "duckdb_peak_rss_mib": sm["duckdb"]["peak_rss_mib"], "L1_peak_rss_mib": sm["L1"]["peak_rss_mib"],
                "ratio_diff_to_L1": round(sm["diff"]["median_s"] / sm["L1"]["median_s"], 2),
                "ratio_diff_to_duckdb": round(sm["diff"]["median_s"] / sm["duckdb"]["median_s"], 2),
                "exact": ok, "diff_ns_per_row": round(1e9 * sm["diff"]["median_s"] / size, 1),
            })
            figures.append(figure(f"diff peak RSS, 2 x {size / 1e6:g}M rows", sm["diff"]["peak_rss_mib"], "MiB",
                                  "4 GiB", sm["diff"]["peak_rss_mib"] / 4096, "< 4096 MiB",
                                  sm["diff"]["peak_rss_mib"] < 4096, seconds=sm["diff"]["median_s"],
                                  ratio_to_L1=round(sm["diff"]["median_s"] / sm["L1"]["median_s"], 2),
                                  ratio_to_duckdb=round(sm["diff"]["median_s"] / sm["duckdb"]["median_s"], 2)))
        if len(scale_out) >= 2:
            lo, hi = scale_out[0], scale_out[-1]
            growth = (hi["diff_s"] / lo["diff_s"]) / (hi["rows"] / lo["rows"])
            figures.append(figure(f"diff time growth {lo['rows'] / 1e6:g}M -> {hi['rows'] / 1e6:g}M, per row",
                                  growth, "x", "linear (1x per row)", growth, "<= 1.2x (linear)", growth <= 1.2))

        dm: dict[str, Any] = {}
        if rows:
            if console:
                console.print(f"[bold]reconcile bench[/]: drift, {regions} x {rows:,} feature rows …")
            d_uris = [f"{tmp}/drift/region{i:02d}" for i in range(regions)]
            in_subprocess(make_drift_tables, f"{tmp}/drift", regions, rows)
            dm = interleaved({"scan": (_scan, (d_uris,)), "drift": (_drift, (d_uris,)),
                              "gate drift": (_gate_drift, (d_uris,))}, reps)
            exact = in_subprocess(_exact_ks, d_uris, dm["drift"]["value"]["aside"])["value"]
            ks_err = max(abs(a - b) for c in DRIFT_COLUMNS for a, b in zip(dm["drift"]["value"]["ks"][c], exact[c], strict=True))
            figures += [
                ratio_figure(f"drift (PSI + KS), {regions} x {rows / 1e6:g}M rows x {len(DRIFT_COLUMNS)} columns / one scan",
                             dm["drift"], dm["scan"], "polars scan of the drift tables", 2.0),
                ratio_figure(f"gate drift from published cell histograms, {regions} regions / one scan", dm["gate drift"],
                             dm["scan"], "polars scan of the drift tables", 2.0),
                figure("drift KS max |binned - exact|", ks_err, "", "exact two-sample KS", None, "<= 1e-3", ks_err <= 1e-3),
            ]
    result = {"parity_rows": parity_rows, "reps": reps, "figures": figures, "scale": scale_out,
              "parity": m,
              "parity_expected": meta, "drift_flagged": dm["drift"]["value"]["flagged"] if dm else []}
    if console:
        print_figures(console, "reconcile", figures)
        if scale_out:
            from rich.table import Table

            t = Table(title="diff against rows (median of interleaved runs)")
            for col in ("rows a side", "L1", "diff", "DuckDB", "diff / L1", "diff / DuckDB", "diff peak RSS", "DuckDB peak RSS", "ns/row"):
                t.add_column(col, justify="right")
            for r in scale_out:
                t.add_row(f"{r['rows']:,}", f"{r['L1_s']:.2f} s", f"{r['diff_s']:.2f} s", f"{r['duckdb_s']:.2f} s",
                          f"{r['ratio_diff_to_L1']}x", f"{r['ratio_diff_to_duckdb']}x",
                          f"{r['diff_peak_rss_mib']:,.0f} MiB", f"{r['duckdb_peak_rss_mib']:,.0f} MiB",
                          f"{r['diff_ns_per_row']}")
            console.print(t)
    return result


def main() -> None:
    import argparse
    import json

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000, help="feature rows per region (drift)")
    p.add_argument("--regions", type=int, default=12)
    p.add_argument("--parity-rows", type=int, default=10_000_000)
    p.add_argument("--scale", type=int, action="append", help="also diff at these sizes (rows a side)")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    res = run(rows=args.rows, regions=args.regions, parity_rows=args.parity_rows, scale=args.scale, reps=args.reps,
              console=None if args.json else Console())
    if args.json:
        print(json.dumps(res, indent=2, default=str))


if __name__ == "__main__":
    main()
