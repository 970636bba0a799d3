"""Core benchmark: ingest + features for N regions x M rows against a plain parquet round trip.

The landing files are generated first (not timed). Then, each in a fresh process:

* **pipeline**: for each region in turn, the runner's ``ingest`` (read the landing parquet,
  write the raw Delta partition) and ``transform`` (card and merchant features to Delta);
* **reference**: for each region in turn, polars writes the same rows to parquet and reads
  them back.

The ratio pipeline / reference is the figure to watch; peak RSS is compared with one
region's raw frame in memory (the pipeline works region by region, never all at once).
Only one interval is run, so the features' 7-day lookback finds no history.
"""

from __future__ import annotations

import tempfile
from datetime import date
from pathlib import Path
from typing import Any

from rich.console import Console

from pipelines.bench._measure import in_subprocess, measure_table

BENCH_DATE = date(2026, 1, 1)


def bench_spec(landing: str, root: str, regions: list[str]) -> Any:
    from pipelines.spec import load_spec, parse_spec

    data = load_spec("fraud_features").model_dump(mode="json")
    data["sources"]["transactions"] = {"kind": "parquet", "path": f"{landing}/{{region}}/{{ds}}.parquet"}
    data.update(regions=regions, storage={"root": root}, validation={**data["validation"], "enabled": False})
    return parse_spec(data, "bench")


def _generate(landing: str, regions: list[str], rows: int) -> dict[str, Any]:
    from pipelines.sources.synthetic import export_files, transactions

    export_files(landing, regions=regions, dates=[BENCH_DATE], rows=rows)
    one = transactions(regions[0], BENCH_DATE, regions=regions, rows=rows)
    return {"raw_mib": one.estimated_size() / 2**20, "bytes_on_disk": sum(
        p.stat().st_size for p in Path(landing).rglob("*.parquet"))}


def _pipeline(landing: str, root: str, regions: list[str]) -> dict[str, Any]:
    import time

    from pipelines.runner import ingest, transform
    from pipelines.spec import Interval

    spec = bench_spec(landing, root, regions)
    interval = Interval.for_date(BENCH_DATE)
    t_ingest = t_transform = 0.0
    rows = 0
    for region in regions:
        t0 = time.perf_counter()
        refs = ingest(spec, interval, region)
        t1 = time.perf_counter()
        transform(spec, interval, region)
        t2 = time.perf_counter()
        t_ingest += t1 - t0
        t_transform += t2 - t1
        rows += refs[0].rows
    return {"ingest_s": t_ingest, "transform_s": t_transform, "rows": rows}




def _reference_timed(landing: str, scratch: str, regions: list[str]) -> dict[str, Any]:
    """Time only the write + read back, not the landing read that feeds it."""
    import time

    import polars as pl

    total = 0.0
    for region in regions:
        df = pl.read_parquet(f"{landing}/{region}/{BENCH_DATE}.parquet")
        t0 = time.perf_counter()
        out = f"{scratch}/{region}.parquet"
        df.write_parquet(out)
        pl.read_parquet(out)
        total += time.perf_counter() - t0
    return {"seconds": total}


def run(*, rows: int, regions: int, console: Console | None = None) -> dict[str, Any]:
    from pipelines.spec import load_spec

    region_ids = load_spec("fraud_features").regions[:regions]
    with tempfile.TemporaryDirectory(prefix="lockstep-bench-") as tmp:
        landing, root, scratch = f"{tmp}/landing", f"{tmp}/root", f"{tmp}/scratch"
        Path(scratch).mkdir()
        if console:
            console.print(f"[bold]core bench[/]: generating {regions} x {rows:,} rows …")
        gen = in_subprocess(_generate, landing, region_ids, rows)
        pipe = in_subprocess(_pipeline, landing, root, region_ids)
        one = in_subprocess(_pipeline, landing, f"{tmp}/root-one", region_ids[:1])
        ref = in_subprocess(_reference_timed, landing, scratch, region_ids)
    total_rows = pipe["value"]["rows"]
    pipe_s = pipe["seconds"]
    ref_s = ref["value"]["seconds"]
    raw_mib = gen["value"]["raw_mib"]
    result = {
        "regions": regions,
        "rows_per_region": rows,
        "rows": total_rows,
        "pipeline_s": round(pipe_s, 3),
        "ingest_s": round(pipe["value"]["ingest_s"], 3),
        "transform_s": round(pipe["value"]["transform_s"], 3),
        "reference_parquet_roundtrip_s": round(ref_s, 3),
        "ratio_pipeline_to_reference": round(pipe_s / ref_s, 2),
        "rows_per_s": round(total_rows / pipe_s),
        "peak_rss_mib": round(pipe["peak_rss_mib"], 1),
        "rss_after_imports_mib": round(pipe["baseline_rss_mib"], 1),
        "one_region_raw_mib": round(raw_mib, 1),
        "ratio_peak_rss_to_region_raw": round(pipe["peak_rss_mib"] / raw_mib, 2),
        "ratio_peak_rss_above_imports_to_region_raw": round((pipe["peak_rss_mib"] - pipe["baseline_rss_mib"]) / raw_mib, 2),
        "peak_rss_one_region_mib": round(one["peak_rss_mib"], 1),
        "ratio_peak_rss_all_regions_to_one_region": round(pipe["peak_rss_mib"] / one["peak_rss_mib"], 2),
        "goals": {"ratio_pipeline_to_reference": 6.0, "ratio_peak_rss_to_region_raw": 4.0},
    }
    if console:
        t = measure_table(f"core: ingest + features, {regions} regions x {rows:,} rows (one interval)")
        t.add_row("pipeline (ingest + features)", f"{pipe_s:.2f} s", "")
        t.add_row("  ingest / transform", f"{result['ingest_s']:.2f} s / {result['transform_s']:.2f} s", "")
        t.add_row("reference: polars parquet write + read", f"{ref_s:.2f} s", "")
        t.add_row("[bold]ratio pipeline / reference", f"[bold]{result['ratio_pipeline_to_reference']}x", "<= 6x")
        t.add_row("throughput", f"{result['rows_per_s']:,} rows/s", "")
        t.add_row("one region's raw frame", f"{raw_mib:.0f} MiB", "")
        t.add_row("peak RSS (pipeline process)", f"{result['peak_rss_mib']:.0f} MiB", "")
        t.add_row("[bold]ratio peak RSS / region raw", f"[bold]{result['ratio_peak_rss_to_region_raw']}x", "<= 4x")
        t.add_row("  same, above the RSS after imports", f"{result['ratio_peak_rss_above_imports_to_region_raw']}x", "")
        t.add_row("peak RSS, one region alone", f"{result['peak_rss_one_region_mib']:.0f} MiB", "")
        t.add_row(f"ratio peak RSS {regions} regions / one region",
                  f"{result['ratio_peak_rss_all_regions_to_one_region']}x", "~1x")
        console.print(t)
    return result
