"""Core benchmark: ingest + features for N regions x M rows against a plain parquet round trip.

The landing files are generated first (not timed). Then, each in a fresh process, the
pipeline and the reference interleaved (:func:`pipelines.bench._measure.interleaved`: in
turn, at least three times; every run writes to a fresh root, so no write is skipped as
unchanged):

* **pipeline**: for each region in turn, the runner's ``ingest`` (read the landing parquet,
  write the raw Delta partition) and ``transform`` (card and merchant features to Delta);
* **reference**: for each region in turn, polars writes the same rows to parquet and reads
  them back.

The ratio pipeline / reference (medians) is the figure to watch; peak RSS above the RSS after
the phase's imports is compared with one region's raw frame in memory (the pipeline works
region by region, never all at once).
Only one interval is run, so the features' 7-day lookback finds no history.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from datetime import date
from pathlib import Path
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

BENCH_DATE = date(2026, 1, 1)
#: issue 25's goals: the pipeline within 3x a parquet write + read of the same rows, and its peak RSS
#: above imports within 3x one region's raw frame
GOAL = 3.0


def flagship_variant(edit: Callable[[dict[str, Any]], None]) -> Any:
    """The flagship spec with ``edit`` applied to its data, still resolving its relative paths
    (the transform file, the suites) against the flagship's own folder, whatever the working
    directory: ``lockstep bench`` runs from anywhere."""
    from pipelines.spec import load_spec, parse_spec

    flagship = load_spec("fraud_features")
    data = flagship.model_dump(mode="json")
    edit(data)
    return parse_spec(data, "bench").with_path(flagship.path)


def bench_spec(landing: str, root: str, regions: list[str]) -> Any:
    def edit(data: dict[str, Any]) -> None:
        data["sources"]["transactions"] = {"kind": "parquet", "path": f"{landing}/{{region}}/{{ds}}.parquet"}
        data.update(regions=regions, storage={"root": root}, validation={**data["validation"], "enabled": False})

    return flagship_variant(edit)


def _generate(landing: str, regions: list[str], rows: int) -> dict[str, Any]:
    from pipelines.sources.synthetic import export_files, transactions

    export_files(landing, regions=regions, dates=[BENCH_DATE], rows=rows)
    one = transactions(regions[0], BENCH_DATE, regions=regions, rows=rows)
    return {"raw_mib": one.estimated_size() / 2**20, "bytes_on_disk": sum(
        p.stat().st_size for p in Path(landing).rglob("*.parquet"))}


def _pipeline(landing: str, parent: str, regions: list[str]) -> dict[str, Any]:
    import shutil
    import time

    from pipelines.runner import ingest, transform
    from pipelines.spec import Interval

    root = tempfile.mkdtemp(dir=parent)
    spec = bench_spec(landing, root, regions)
    interval = Interval.for_date(BENCH_DATE)
    mark_baseline()
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
    shutil.rmtree(root, ignore_errors=True)
    return {"seconds": t_ingest + t_transform, "ingest_s": t_ingest, "transform_s": t_transform, "rows": rows}


def _reference_timed(landing: str, parent: str, regions: list[str]) -> dict[str, Any]:
    """Time only the write + read back, not the landing read that feeds it."""
    import shutil
    import time

    import polars as pl

    scratch = tempfile.mkdtemp(dir=parent)
    mark_baseline()
    total = 0.0
    for region in regions:
        df = pl.read_parquet(f"{landing}/{region}/{BENCH_DATE}.parquet")
        t0 = time.perf_counter()
        out = f"{scratch}/{region}.parquet"
        df.write_parquet(out)
        pl.read_parquet(out)
        total += time.perf_counter() - t0
    shutil.rmtree(scratch, ignore_errors=True)
    return {"seconds": total}


def run(*, rows: int, regions: int, console: Console | None = None, reps: int = 3) -> dict[str, Any]:
    from pipelines.spec import load_spec

    region_ids = load_spec("fraud_features").regions[:regions]
    with tempfile.TemporaryDirectory(prefix="lockstep-bench-") as tmp:
        landing, work = f"{tmp}/landing", f"{tmp}/work"
        Path(work).mkdir()
        if console:
            console.print(f"[bold]core bench[/]: generating {regions} x {rows:,} rows …")
        gen = in_subprocess(_generate, landing, region_ids, rows)
        if console:
            console.print(f"  pipeline, one region alone and the reference, {reps} interleaved runs each …")
        m = interleaved({"pipeline": (_pipeline, (landing, work, region_ids)),
                         "reference": (_reference_timed, (landing, work, region_ids)),
                         "one region": (_pipeline, (landing, work, region_ids[:1]))}, reps)
    pipe, ref, one = m["pipeline"], m["reference"], m["one region"]
    raw_mib = gen["value"]["raw_mib"]
    total_rows = pipe["value"]["rows"]
    rss_ratio = pipe["rss_above_baseline_mib"] / raw_mib
    figures = [
        ratio_figure(f"ingest + features, {regions} regions x {rows / 1e6:g}M rows / parquet write + read",
                     pipe, ref, "polars parquet write + read of the same rows", GOAL,
                     ingest_s=round(pipe["value"]["ingest_s"], 3), transform_s=round(pipe["value"]["transform_s"], 3),
                     rows_per_s=round(total_rows / pipe["median_s"])),
        figure("peak RSS above imports / one region's raw frame", pipe["rss_above_baseline_mib"], "MiB",
               f"one region's raw frame ({raw_mib:.0f} MiB)", rss_ratio, f"<= {GOAL:g}x", rss_ratio <= GOAL,
               peak_rss_mib=pipe["peak_rss_mib"], rss_after_imports_mib=round(pipe["peak_rss_mib"] - pipe["rss_above_baseline_mib"], 1)),
        figure(f"peak RSS above imports, {regions} regions / one region alone", pipe["rss_above_baseline_mib"], "MiB",
               f"one region alone ({one['rss_above_baseline_mib']:.0f} MiB)",
               pipe["rss_above_baseline_mib"] / max(1.0, one["rss_above_baseline_mib"]), "~1x", None),
    ]
    result = {
        "regions": regions, "rows_per_region": rows, "rows": total_rows, "reps": reps, "figures": figures,
        "pipeline": pipe, "reference": ref, "one_region": one, "one_region_raw_mib": round(raw_mib, 1),
        # the keys earlier runs printed, from the medians
        "pipeline_s": pipe["median_s"], "reference_parquet_roundtrip_s": ref["median_s"],
        "ratio_pipeline_to_reference": round(pipe["median_s"] / ref["median_s"], 2),
        "peak_rss_mib": pipe["peak_rss_mib"], "ratio_peak_rss_above_imports_to_region_raw": round(rss_ratio, 2),
        "ratio_peak_rss_all_regions_to_one_region": round(pipe["peak_rss_mib"] / one["peak_rss_mib"], 2),
    }
    if console:
        print_figures(console, f"core: ingest + features, {regions} regions x {rows:,} rows (one interval)", figures)
    return result
