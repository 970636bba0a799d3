"""Validation benchmark: the shipped transactions suite (17 expectations) over N rows.

Subjects and references, measured in the same run, each run in a fresh process:

* ``lockstep`` - :func:`pipelines.validation.run_suite` with engine ``polars``;
* ``scan`` - one polars scan of the columns the suite reads (a null count and a sum per
  column: every value touched once), the floor any validation pays;
* ``pandera`` - pandera's polars backend on an equivalent schema (the same checks on the
  same columns, aggregates as custom checks; the ``bench`` extra installs it);
* ``gx`` - Great Expectations' own pandas engine on the same suite.

Each size's frame is generated once and written to Arrow IPC; every process reads it back,
so no phase pays the generator. Repetitions are interleaved (scan, lockstep, pandera, gx,
then again) so a noisy, shared machine slows all of them alike; min and median reported.
Memory: the baseline is taken after imports and a warm-up run on a tiny frame, the peak
(``VmHWM``, reset after the frame is read) during validation; reported as peak minus
baseline over the frame's in-memory size (so 1.0x is the frame itself, nothing else).

    lockstep bench --only validation --rows 1000000        # 1M and 5M rows
    python -m pipelines.bench.validation --rows 1000000 --rows 5000000 --reps 5
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from pipelines.bench._measure import figure, in_subprocess, rss_mib

D = date(2026, 1, 1)
SUBJECTS = ("scan", "lockstep", "pandera", "gx")


def _write_frame(rows: int, path: str) -> float:
    from pipelines.sources.synthetic import transactions

    frame = transactions("eu-west", D, regions=["eu-west", "us-east"], rows=rows)
    frame.write_ipc(path)
    return float(frame.estimated_size() / 2**20)


def _suite() -> Any:
    from pipelines.spec import DAGS_DIR
    from pipelines.validation.suites import load_suite

    return load_suite(DAGS_DIR.parent / "expectations" / "transactions.json")


def pandera_schema() -> Any:
    """The transactions suite as a pandera (polars backend) schema: the same checks on the
    same columns; aggregates (median, mean, quantiles, distinct values, row count) as custom
    checks over the column, as pandera users write them."""
    import pandera.polars as pa
    import polars as pl

    def agg(fn: Any, lo: float, hi: float) -> Any:
        return pa.Check(lambda data: data.lazyframe.select(fn(pl.col(data.key)).is_between(lo, hi)))

    channels = ["pos", "ecom", "atm"]
    return pa.DataFrameSchema(
        {
            "txn_id": pa.Column(pl.String, pa.Check.str_matches(r"^[a-z][a-z0-9-]+:\d{4}-\d{2}-\d{2}:\d+$"),
                                unique=True, nullable=False),
            "card_id": pa.Column(nullable=False),
            "merchant_id": pa.Column(nullable=False),
            "mcc": pa.Column(nullable=False),
            "event_time": pa.Column(nullable=False),
            "amount": pa.Column(pl.Float64, [
                pa.Check.gt(0), pa.Check.le(100_000),
                agg(lambda c: c.median(), 12, 60), agg(lambda c: c.mean(), 20, 85),
                agg(lambda c: c.quantile(0.05, "nearest"), 1, 20), agg(lambda c: c.quantile(0.95, "nearest"), 60, 400),
            ], nullable=True),
            "channel": pa.Column(pl.String, [
                pa.Check.isin(channels),
                pa.Check(lambda data: data.lazyframe.select(pl.col(data.key).drop_nulls().unique().is_in(channels).all())),
            ], nullable=True),
            "currency": pa.Column(pl.String, pa.Check.str_matches(r"^[A-Z]{3}$"), nullable=True),
            "card_region": pa.Column(pl.String, pa.Check.str_length(2, 32), nullable=True),
        },
        checks=[pa.Check(lambda data: data.lazyframe.select(pl.len().is_between(100, 100_000_000)))],
    )


def _reset_peak() -> None:
    """Restart the kernel's peak-RSS counter (``VmHWM``) at the current RSS (Linux)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _peak_mib() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _one(path: str, subject: str) -> dict[str, Any]:
    """One timed run of ``subject`` over the frame at ``path``, in this (fresh) process."""
    import io
    import time

    import polars as pl

    suite = _suite()
    tiny = pl.read_ipc(path, n_rows=500)
    cols = sorted({c for e in suite.expectations for c in e.columns()})
    schema = None
    if subject == "lockstep":  # pay one-time imports (GX's result helpers) outside the timing
        from pipelines.validation import run_suite

        run_suite(tiny, suite.expectations, "polars")
    elif subject == "gx":
        from pipelines.validation import gx_engine

        gx_engine.validate(tiny, suite.expectations)
    elif subject == "pandera":
        schema = pandera_schema()
        schema.validate(tiny, lazy=True)
    def scan(df: pl.DataFrame) -> None:
        df.select([pl.col(c).null_count().alias(f"n_{c}") for c in cols]
                  + [pl.col(c).str.len_bytes().sum().alias(f"s_{c}") if df.schema[c] == pl.String
                     else pl.col(c).cast(pl.Float64).sum().alias(f"s_{c}") for c in cols])

    scan(tiny)  # every subject starts with polars' thread pool warm
    baseline = rss_mib()
    # decoded from bytes, not memory-mapped: the frame is the process's own memory, counted once
    frame = pl.read_ipc(io.BytesIO(Path(path).read_bytes()))
    frame_mib = frame.estimated_size() / 2**20
    loaded = rss_mib()
    _reset_peak()
    t0 = time.perf_counter()
    passed: int | None = None
    if subject == "scan":
        scan(frame)
    elif subject == "pandera":
        assert schema is not None
        schema.validate(frame, lazy=True)  # raises on any failure: the data passes
        passed = -1
    else:
        from pipelines.validation import run_suite

        results = run_suite(frame, suite.expectations, "polars" if subject == "lockstep" else "gx")
        passed = sum(bool(r["success"]) for r in results)
    seconds = time.perf_counter() - t0
    peak = _peak_mib()
    return {"seconds": seconds, "frame_mib": frame_mib, "baseline_mib": baseline, "loaded_mib": loaded,
            "peak_mib": peak, "passed": passed}


def _measure(rows: int, reps: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="lockstep-bench-") as tmp:
        path = str(Path(tmp) / f"transactions_{rows}.arrow")
        in_subprocess(_write_frame, rows, path)
        runs: dict[str, list[dict[str, Any]]] = {s: [] for s in SUBJECTS}
        for _ in range(reps):
            for subject in SUBJECTS:
                runs[subject].append(in_subprocess(_one, path, subject)["value"])
    t = {s: [r["seconds"] for r in rs] for s, rs in runs.items()}
    mins = {s: min(v) for s, v in t.items()}
    meds = {s: statistics.median(v) for s, v in t.items()}
    frame_mib = runs["lockstep"][0]["frame_mib"]

    def rss(subject: str) -> float:
        return max(r["peak_mib"] - r["baseline_mib"] for r in runs[subject]) / frame_mib

    def extra(subject: str) -> float:
        return max(r["peak_mib"] - r["loaded_mib"] for r in runs[subject]) / frame_mib

    return {
        "rows": rows, "reps": reps, "frame_mib": round(frame_mib, 1),
        **{f"{s}_s_min": round(mins[s], 3) for s in SUBJECTS},
        **{f"{s}_s_median": round(meds[s], 3) for s in SUBJECTS},
        "x_gx": round(mins["gx"] / mins["lockstep"], 1), "x_gx_median": round(meds["gx"] / meds["lockstep"], 1),
        "x_scan": round(mins["lockstep"] / mins["scan"], 2), "x_scan_median": round(meds["lockstep"] / meds["scan"], 2),
        "x_pandera": round(mins["pandera"] / mins["lockstep"], 1),
        "x_pandera_median": round(meds["pandera"] / meds["lockstep"], 1),
        "lockstep_rss_over_frame": round(rss("lockstep"), 2), "lockstep_extra_rss_over_frame": round(extra("lockstep"), 2),
        "pandera_rss_over_frame": round(rss("pandera"), 2), "gx_rss_over_frame": round(rss("gx"), 2),
        "engines_agree": {r["passed"] for r in runs["lockstep"]} == {r["passed"] for r in runs["gx"]},
    }


def _figures(r: dict[str, Any]) -> list[dict[str, Any]]:
    """The size's figures against issue 25's goals (ratios of medians; the min ratio beside)."""
    n, med = f"{r['rows'] / 1e6:g}M rows", {s: r[f"{s}_s_median"] for s in SUBJECTS}
    x_scan, x_gx = med["lockstep"] / med["scan"], med["gx"] / med["lockstep"]
    x_pandera = med["pandera"] / med["lockstep"]
    return [
        figure(f"validation, transactions suite, {n} / one scan", med["lockstep"], "s",
               f"one polars scan of the same columns ({med['scan']:.3f} s median)", x_scan, "<= 3x", x_scan <= 3.0,
               min_ratio=round(r["lockstep_s_min"] / r["scan_s_min"], 2)),
        figure(f"validation, transactions suite, {n}: GX / Lockstep", med["gx"], "s",
               f"Lockstep ({med['lockstep']:.3f} s median)", x_gx, ">= 10x", x_gx >= 10.0, min_ratio=r["x_gx"],
               engines_agree=r["engines_agree"]),
        figure(f"validation, transactions suite, {n}: pandera / Lockstep", med["pandera"], "s",
               f"Lockstep ({med['lockstep']:.3f} s median)", x_pandera, "> 1x", x_pandera > 1.0,
               min_ratio=r["x_pandera"]),
        figure(f"validation peak RSS above imports / the frame, {n}", r["lockstep_rss_over_frame"] * r["frame_mib"],
               "MiB", f"the frame ({r['frame_mib']:.0f} MiB)", r["lockstep_rss_over_frame"], "<= 1.5x",
               r["lockstep_rss_over_frame"] <= 1.5),
    ]


def run(*, rows: int, regions: int = 1, console: Console | None = None, sizes: list[int] | None = None,
        reps: int = 5) -> dict[str, Any]:
    """Measure at ``sizes`` (default: ``rows`` and 5x ``rows``); returns one dict per size."""
    out: dict[str, Any] = {str(n): _measure(n, reps) for n in (sizes or [rows, 5 * rows])}
    out["figures"] = [f for r in list(out.values()) for f in _figures(r)]
    if console:
        t = Table(title=f"validation: transactions suite (17 expectations), min of {reps} interleaved runs (median)")
        for col in ("rows", "scan", "lockstep", "pandera", "gx", "gx / lockstep", "lockstep / scan",
                    "pandera / lockstep", "frame", "lockstep RSS / frame"):
            t.add_column(col, justify="right")
        for r in (v for k, v in out.items() if k != "figures"):
            t.add_row(f"{r['rows']:,}", *(f"{r[f'{s}_s_min']:.3f} s" for s in SUBJECTS),
                      f"[bold]{r['x_gx']}x[/] ({r['x_gx_median']}x)", f"[bold]{r['x_scan']}x[/] ({r['x_scan_median']}x)",
                      f"[bold]{r['x_pandera']}x[/] ({r['x_pandera_median']}x)", f"{r['frame_mib']:.0f} MiB",
                      f"{r['lockstep_rss_over_frame']}x")
        console.print(t)
        console.print("goals: gx / lockstep >= 10x; lockstep / scan <= 3x; faster than pandera; "
                      "RSS above the post-import baseline <= 1.5x the frame (the frame itself is 1.0x)")
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, action="append")
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    run(rows=(args.rows or [1_000_000])[0], sizes=args.rows, reps=args.reps, console=Console())
