"""Validation benchmark: the shipped transactions suite over N rows, engines polars and gx.

References measured in the same run, each in a fresh process: one polars scan of the
columns the suite reads (a null count and a sum per column: every value touched once), and
GX's own pandas engine. Reported: time, peak RSS, ratios gx / polars and polars / scan, and
peak RSS over the frame's in-memory size.

    python -m pipelines.bench.validation --rows 1000000 --rows 10000000
"""

from __future__ import annotations

import argparse
from datetime import date
from typing import Any

from rich.console import Console
from rich.table import Table

from pipelines.bench._measure import in_subprocess, rss_mib

D = date(2026, 1, 1)


def _frame(rows: int) -> Any:
    from pipelines.sources.synthetic import transactions

    return transactions("eu-west", D, regions=["eu-west", "us-east"], rows=rows)


def _suite() -> Any:
    from pipelines.spec import DAGS_DIR
    from pipelines.validation.suites import load_suite

    return load_suite(DAGS_DIR.parent / "expectations" / "transactions.json")


def _engine(rows: int, engine: str) -> dict[str, Any]:
    import time

    frame = _frame(rows)
    suite = _suite()
    if engine == "gx":  # pay GX's import and context outside the timing
        from pipelines.validation import gx_engine

        gx_engine.validate(frame.head(10), suite.expectations[:1])
    from pipelines.validation import run_suite

    if engine == "polars":  # pay the one-time imports (GX's result helpers) outside the timing too
        run_suite(frame.head(10), suite.expectations, engine)

    before = rss_mib()
    t0 = time.perf_counter()
    if engine == "scan":
        import polars as pl

        cols = sorted({c for e in suite.expectations for c in e.columns()})
        frame.select([pl.col(c).null_count().alias(f"n_{c}") for c in cols]
                     + [pl.col(c).cast(pl.String).str.len_bytes().sum().alias(f"s_{c}") if frame.schema[c] == pl.String
                        else pl.col(c).cast(pl.Float64).sum().alias(f"s_{c}") for c in cols])
        ok = None
    else:
        results = run_suite(frame, suite.expectations, engine)
        ok = sum(r["success"] for r in results)
    return {"seconds": time.perf_counter() - t0, "frame_mib": frame.estimated_size() / 2**20,
            "rss_before_mib": before, "passed": ok}


def run(*, rows: int, regions: int = 1, console: Console | None = None, sizes: list[int] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for n in sizes or [rows]:
        m = {engine: in_subprocess(_engine, n, engine) for engine in ("scan", "polars", "gx")}
        v = {k: x["value"] for k, x in m.items()}
        frame_mib = v["polars"]["frame_mib"]
        out[str(n)] = {
            "rows": n,
            "scan_s": round(v["scan"]["seconds"], 3),
            "polars_s": round(v["polars"]["seconds"], 3),
            "gx_s": round(v["gx"]["seconds"], 3),
            "ratio_gx_to_polars": round(v["gx"]["seconds"] / v["polars"]["seconds"], 1),
            "ratio_polars_to_scan": round(v["polars"]["seconds"] / v["scan"]["seconds"], 2),
            "frame_mib": round(frame_mib, 1),
            "polars_peak_rss_mib": round(m["polars"]["peak_rss_mib"], 1),
            "gx_peak_rss_mib": round(m["gx"]["peak_rss_mib"], 1),
            "polars_extra_rss_over_frame": round((m["polars"]["peak_rss_mib"] - v["polars"]["rss_before_mib"]) / frame_mib, 2),
            "gx_extra_rss_over_frame": round((m["gx"]["peak_rss_mib"] - v["gx"]["rss_before_mib"]) / frame_mib, 2),
            "engines_agree": v["polars"]["passed"] == v["gx"]["passed"],
        }
    if console:
        t = Table(title="validation: transactions suite (17 expectations)")
        for col in ("rows", "one scan", "polars", "gx", "gx / polars", "polars / scan", "frame", "polars extra RSS / frame", "gx extra RSS / frame"):
            t.add_column(col, justify="right")
        for r in out.values():
            t.add_row(f"{r['rows']:,}", f"{r['scan_s']:.2f} s", f"{r['polars_s']:.2f} s", f"{r['gx_s']:.2f} s",
                      f"[bold]{r['ratio_gx_to_polars']}x", f"[bold]{r['ratio_polars_to_scan']}x", f"{r['frame_mib']:.0f} MiB",
                      f"{r['polars_extra_rss_over_frame']}x", f"{r['gx_extra_rss_over_frame']}x")
        console.print(t)
        console.print("goals: gx / polars >= 10x; polars / scan <= 3x; polars extra RSS <= 1.5x the frame")
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, action="append")
    args = parser.parse_args()
    run(rows=(args.rows or [1_000_000])[0], sizes=args.rows or [1_000_000], console=Console())
