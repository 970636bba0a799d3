"""Evidence benchmark: what deciding from evidence costs, against reading the data.

Three figures, each a ratio to a reference measured in the same run, interleaved (reference
and subject alternate, ``REPS`` times; min and median reported), with the RSS the subject
adds above its baseline:

* **in sync?** for a replicated table of ``rows`` rows in two regions, answered by the
  parity check from the regions' published profiles (whole-table digests), against one scan
  of one region's table; the bytes read from the evidence store are reported;
* **publishing a profile** of a written version, against the Delta write it accompanies,
  for a raw table (totals, event time), a features table (drift cell counts) and a
  replicated table (the digest tree: every row hashed);
* **the gate's whole decision** (reconcile from evidence, then the decision commit) for
  ``regions`` regions of the flagship at ``rows`` rows each, against one scan of one
  region's ``card_features`` table.

"in sync?" and the gate are each measured twice in the same rounds: reading the regions'
interval indexes (:mod:`pipelines.control.index`), and without them (every region's tables
read, as on an index miss), so the index's gain is a ratio of one run.
"""

from __future__ import annotations

import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

from rich.console import Console

from pipelines.bench._measure import figure, measure_table, rss_mib

REPS = 3


def _interleaved(reference: Callable[[], Any], subject: Callable[[], Any], reps: int = REPS) -> dict[str, float]:
    return _interleaved_many(reference, {"subject": subject}, reps)["subject"]


def _interleaved_many(reference: Callable[[], Any], subjects: dict[str, Callable[[], Any]],
                      reps: int = REPS) -> dict[str, dict[str, float]]:
    """The reference, then each subject in turn, ``reps`` times: each subject's ratios to the
    reference of the same rounds."""
    ref_t: list[float] = []
    sub_t: dict[str, list[float]] = {k: [] for k in subjects}
    extra = dict.fromkeys(subjects, 0.0)
    for _ in range(reps):
        t0 = time.perf_counter()
        reference()
        ref_t.append(time.perf_counter() - t0)
        for key, subject in subjects.items():
            before = rss_mib()
            t0 = time.perf_counter()
            subject()
            sub_t[key].append(time.perf_counter() - t0)
            extra[key] = max(extra[key], rss_mib() - before)
    return {key: {
        "reference_min_s": min(ref_t), "reference_median_s": statistics.median(ref_t),
        "subject_min_s": min(t), "subject_median_s": statistics.median(t),
        "ratio_min": min(t) / min(ref_t), "ratio_median": statistics.median(t) / statistics.median(ref_t),
        "extra_rss_mib": round(extra[key], 1),
    } for key, t in sub_t.items()}


@contextmanager
def _index_aside(spec: Any) -> Iterator[None]:
    """The regions' interval indexes moved aside for the block: the gate falls back to
    reading every region's tables (what it did before the index, and does on a miss)."""
    from pipelines.control.index import INDEX_DIR
    from pipelines.storage import region_prefix

    dirs = [Path(region_prefix(spec.control_root(), spec.name, r)) / INDEX_DIR for r in spec.regions]
    for d in dirs:
        d.rename(d.with_name(INDEX_DIR + ".aside"))
    try:
        yield
    finally:
        for d in dirs:
            d.with_name(INDEX_DIR + ".aside").rename(d)


def _spec(tmp: Path, rows: int, regions: int, replicated_rows: int) -> Any:
    from pipelines.bench.core import flagship_variant

    def edit(data: dict[str, Any]) -> None:
        data["regions"] = data["regions"][:regions]
        data["sources"]["transactions"]["rows_per_region"] = rows
        data["sources"]["merchant_risk"]["merchants"] = replicated_rows
        data["storage"] = {"root": str(tmp / "lake")}

    return flagship_variant(edit)


def _scan(spec: Any, region: str, layer: str, table: str) -> None:
    import polars as pl

    pl.scan_delta(spec.table_uri(region, layer, table)).collect()


def _figures(out: dict[str, Any]) -> list[dict[str, Any]]:
    """The area's figures for ``lockstep bench --json`` (ratios of medians, min beside)."""
    def one(name: str, m: dict[str, Any], reference: str, **extra: Any) -> dict[str, Any]:
        goal = float(m["goal"])
        return figure(name, m["subject_median_s"], "s", f"{reference} ({m['reference_median_s']:.3f} s median)",
                      m["ratio_median"], f"<= {goal:g}x", m["ratio_median"] <= goal,
                      min_ratio=round(m["ratio_min"], 3), **extra)

    s, g = out["in_sync"], out["gate"]
    return [
        one("in sync? from the published evidence (interval index) / one scan", s,
            "one scan of the replicated table", evidence_bytes_read=s["evidence_bytes_read"],
            ratio_without_index=round(s["without_index"]["ratio_median"], 3)),
        one(f"gate decision ({g['status']}), {out['regions']} regions, from evidence / one scan", g,
            "one scan of one region's card_features", ratio_without_index=round(g["without_index"]["ratio_median"], 3)),
        *(one(f"publishing the profile of {key} / its Delta write", p, "its Delta write")
          for key, p in out["publish"].items()),
    ]


def run(*, rows: int, regions: int, console: Console | None = None) -> dict[str, Any]:
    from pipelines.control.evidence import publish_write
    from pipelines.reconcile.context import Context
    from pipelines.reconcile.parity import check_parity
    from pipelines.runner import certify, run_region
    from pipelines.spec import Interval
    from pipelines.storage import read_table, write_interval

    out: dict[str, Any] = {"rows": rows, "regions": regions}
    with tempfile.TemporaryDirectory(prefix="lockstep-bench-evidence-") as tmp:
        day = Interval.for_date(date(2026, 1, 8))
        spec = _spec(Path(tmp), rows, regions, replicated_rows=rows)
        for region in spec.regions:
            run_region(spec, day, region, run_id="bench")
        r0 = spec.regions[0]

        # in sync? from the profiles' digests, against one scan of the replicated table
        check = spec.reconcile.parity[0]
        sync: dict[str, Any] = {}

        def in_sync(use_index: bool = True) -> None:
            ctx = Context.build(spec, day, table=check.table, use_index=use_index)
            res = check_parity(ctx, check)
            assert all(r.success for r in res), [r.message for r in res if not r.success]
            assert not use_index or not ctx.index_misses, ctx.index_misses
            sync["evidence_bytes"] = ctx.bytes_read

        got = _interleaved_many(lambda: _scan(spec, r0, "reference", "merchant_risk"),
                                {"index": in_sync, "tables": lambda: in_sync(False)})
        out["in_sync"] = {**got["index"], "evidence_bytes_read": sync["evidence_bytes"], "goal": 0.05,
                          "without_index": got["tables"]}

        # the gate's whole decision, against one scan of one region's card_features: with the
        # regions' indexes, and with them moved aside (every region's tables read)
        decided: dict[str, Any] = {}

        def gate() -> None:  # a new run id each time, as every run's gate has
            d = certify(spec, day, run_id=f"bench-gate-{uuid.uuid4().hex[:8]}")
            decided["status"] = d.status

        def gate_without_index() -> None:
            with _index_aside(spec):
                gate()
            decided["status_without_index"] = decided["status"]

        got = _interleaved_many(lambda: _scan(spec, r0, "features", "card_features"),
                                {"index": gate, "tables": gate_without_index})
        out["gate"] = {**got["index"], "status": decided["status"], "goal": 0.2, "without_index": got["tables"],
                       "status_without_index": decided["status_without_index"]}


        # publishing a profile, against the Delta write it accompanies
        publish: dict[str, Any] = {}
        for layer, name in (("raw", "transactions"), ("features", "card_features"), ("reference", "merchant_risk")):
            t = spec.table(name)
            uri = spec.table_uri(r0, layer, name)
            part = day.partition(t.partition_by)
            frame = read_table(uri, partition=part).collect()
            ref = write_interval(uri, frame, partition=part, app_id=f"bench/{name}", force=True)

            def write(uri: str = uri, frame: Any = frame, part: dict[str, str] = part, name: str = name) -> None:
                write_interval(uri, frame, partition=part, app_id=f"bench/{name}", force=True)

            def profile(t: Any = t, layer: str = layer, frame: Any = frame, ref: Any = ref) -> None:
                publish_write(spec, r0, t, layer, day, frame, ref, run_id="bench")

            publish[f"{layer}/{name}"] = {**_interleaved(write, profile), "goal": 0.5}
        out["publish"] = publish
    out["figures"] = _figures(out)

    if console is not None:
        table = measure_table(f"evidence: {regions} regions x {rows:,} rows (ratios: min of {REPS} interleaved runs)")
        s = out["in_sync"]
        table.add_row("in sync? from evidence / one scan of the replicated table",
                      f"{s['ratio_min']:.3f}x ({s['evidence_bytes_read']:,} B of evidence; "
                      f"{s['without_index']['ratio_min']:.3f}x without the index)", "<= 0.05x")
        for key, p in out["publish"].items():
            table.add_row(f"publish profile of {key} / its Delta write", f"{p['ratio_min']:.2f}x", "<= 0.5x")
        g = out["gate"]
        table.add_row(f"gate decision ({g['status']}) / one scan of one region's card_features",
                      f"{g['ratio_min']:.3f}x ({g['without_index']['ratio_min']:.3f}x without the index)", "<= 0.2x")
        console.print(table)
    return out
