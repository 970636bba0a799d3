"""Integrity benchmark: what reading a certified partition through its verified files costs.

One region's interval of ``rows`` transactions is written through ``write_interval`` (which
records the sha256 and size of the file it puts). Then, each in a fresh process, interleaved
(:func:`pipelines.bench._measure.interleaved`: in turn, ``reps`` times, min and median):

* **read_table**: ``read_table(uri, version=..., partition=...).collect()``, the plain read
  (polars' Delta reader), the reference;
* **verified_scan**: ``verified_scan(uri, version, partition, files).collect()``: the log's
  files listed and checked against the recorded set, each file's bytes fetched once through
  deltalake's object store and hashed (sha256), the verified bytes scanned.

The figure is the verification's cost, ``(verified - plain) / plain`` on the medians (goal
<= 0.05), with the peak RSS each adds above the RSS after its imports (the verified read
holds the partition's compressed bytes while it decodes them).

    lockstep bench --only integrity --rows 1000000
"""

from __future__ import annotations

import tempfile
from datetime import date
from typing import Any

from rich.console import Console

from pipelines.bench._measure import (
    figure,
    in_subprocess,
    interleaved,
    mark_baseline,
    print_figures,
)

D = date(2026, 1, 1)
GOAL = 0.05


def _write(uri: str, rows: int) -> dict[str, Any]:
    from pipelines.sources.synthetic import transactions
    from pipelines.spec import Interval
    from pipelines.storage import write_interval

    frame = transactions("eu-west", D, regions=["eu-west", "us-east"], rows=rows)
    part = Interval.for_date(D).partition(["ds"])
    ref = write_interval(uri, frame, partition=part, app_id="bench/integrity", fingerprint=1)
    return {"version": ref.version, "partition": part, "files": ref.files, "rows": ref.rows,
            "bytes": sum(int(f["size"]) for f in ref.files.values()), "frame_mib": frame.estimated_size() / 2**20}


def _plain(uri: str, version: int, partition: dict[str, str]) -> dict[str, Any]:
    import time

    from pipelines.storage import read_table

    mark_baseline()
    t0 = time.perf_counter()
    df = read_table(uri, version=version, partition=partition).collect()
    return {"seconds": time.perf_counter() - t0, "rows": df.height}


def _verified(uri: str, version: int, partition: dict[str, str], files: dict[str, Any]) -> dict[str, Any]:
    import time

    from pipelines.integrity import verified_scan

    mark_baseline()
    t0 = time.perf_counter()
    lf = verified_scan(uri, version, partition, files, what="eu-west/raw/transactions")
    t1 = time.perf_counter()
    df = lf.collect()
    t2 = time.perf_counter()
    return {"seconds": t2 - t0, "verify_s": t1 - t0, "rows": df.height}


def run(*, rows: int, regions: int, console: Console | None = None, reps: int = 3) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="lockstep-bench-integrity-") as tmp:
        uri = f"{tmp}/eu-west/raw/transactions"
        if console:
            console.print(f"[bold]integrity bench[/]: writing one region's interval of {rows:,} rows …")
        written = in_subprocess(_write, uri, rows)["value"]
        if console:
            console.print(f"  read_table and verified_scan, {reps} interleaved runs each …")
        m = interleaved({
            "read_table": (_plain, (uri, written["version"], written["partition"])),
            "verified_scan": (_verified, (uri, written["version"], written["partition"], written["files"])),
        }, reps)
    plain, verified = m["read_table"], m["verified_scan"]
    assert plain["value"]["rows"] == verified["value"]["rows"] == written["rows"], (plain, verified, written)
    overhead = (verified["median_s"] - plain["median_s"]) / plain["median_s"]
    min_overhead = (verified["min_s"] - plain["min_s"]) / plain["min_s"]
    figures = [
        figure(f"verification cost: verified_scan vs read_table, one partition of {rows / 1e6:g}M rows",
               overhead, "x (verified - plain) / plain",
               f"read_table(...).collect() ({plain['median_s']:.3f} s median)", overhead, f"<= {GOAL:g}",
               overhead <= GOAL, min_ratio=round(min_overhead, 3), verified_median_s=verified["median_s"],
               runs_s=verified["runs_s"], reference_runs_s=plain["runs_s"], files=len(written["files"]),
               bytes_verified=written["bytes"], verify_s=round(verified["value"]["verify_s"], 4)),
        figure("peak RSS above imports: verified_scan / read_table", verified["rss_above_baseline_mib"], "MiB",
               f"read_table ({plain['rss_above_baseline_mib']:.0f} MiB)",
               verified["rss_above_baseline_mib"] / max(1.0, plain["rss_above_baseline_mib"]), None, None,
               peak_rss_mib=verified["peak_rss_mib"], reference_peak_rss_mib=plain["peak_rss_mib"],
               compressed_mib=round(written["bytes"] / 2**20, 1)),
    ]
    result = {"rows": written["rows"], "reps": reps, "files": len(written["files"]), "bytes": written["bytes"],
              "frame_mib": round(written["frame_mib"], 1), "figures": figures, "read_table": plain,
              "verified_scan": verified, "overhead": round(overhead, 4), "min_overhead": round(min_overhead, 4)}
    if console:
        print_figures(console, f"integrity: one partition of {rows:,} rows ({written['bytes'] / 2**20:.1f} MiB of "
                               f"parquet), verified vs plain read", figures)
    return result
