"""Hand-built pipelines for the reconciliation tests: tables written directly to Delta."""

from __future__ import annotations

from typing import Any

import polars as pl

from pipelines.spec import Interval, PipelineSpec, parse_spec
from pipelines.storage import TableRef, table_uri, write_interval

DAY = Interval.for_date("2026-01-01")
REGIONS = ["r1", "r2", "r3"]


def tiny_spec(reconcile: dict[str, Any] | None = None, **extra: Any) -> PipelineSpec:
    """Three regions, a replicated reference table ``ref`` (key k) and a features table
    ``feats`` (key id, event time ts); no transforms: tests write the tables themselves."""
    data: dict[str, Any] = {
        "name": "tiny",
        "start_date": "2026-01-01",
        "regions": REGIONS,
        "sources": {"ref_src": {"kind": "synthetic", "dataset": "merchant_risk", "merchants": 10}},
        "tables": [
            {"name": "ref", "layer": "reference", "source": "ref_src", "keys": ["k"], "replicated": True},
            {"name": "feats", "layer": "features", "keys": ["id"], "event_time": "ts"},
        ],
        "validation": {"enabled": False},
        "reconcile": reconcile if reconcile is not None else {},
        **extra,
    }
    return parse_spec(data, "tiny")


def put(spec: PipelineSpec, root: str, region: str, layer: str, table: str, df: pl.DataFrame,
        interval: Interval = DAY, source: dict[str, float] | None = None) -> TableRef:
    """Write one interval of a region's table as a region step does: the write, then its
    published profile (the evidence the gate reads)."""
    from pipelines.control.evidence import publish_write

    ref = write_interval(
        table_uri(root, spec.name, region, layer, table), df, partition=interval.partition(["ds"]),
        app_id=f"test/{region}/{layer}/{table}/{interval.key}",
    )
    publish_write(spec, region, spec.table(table), layer, interval, df, ref, root=root, source=source)
    return ref


def ref_frame(n: int = 50) -> pl.DataFrame:
    return pl.DataFrame({"k": list(range(n)), "score": [i / 10 for i in range(n)], "tier": ["a", "b"] * (n // 2)})


def feats_frame(region: str, n: int = 2000, shift: float = 0.0, seed: int = 1, interval: Interval = DAY) -> pl.DataFrame:
    import numpy as np

    rng = np.random.default_rng([seed, REGIONS.index(region) if region in REGIONS else 9])
    start = interval.start
    offsets = np.sort(rng.integers(0, 86_400_000_000, n))
    offsets[-1] = 86_400_000_000 - 1  # an event in the last microsecond: fresh
    return pl.DataFrame({
        "id": [f"{region}-{i}" for i in range(n)],
        "amount": rng.lognormal(3.0 + shift, 0.8, n),
        "count": rng.poisson(3, n).astype("int64"),
        "ts": pl.Series([start] * n).dt.cast_time_unit("us") + pl.Series(offsets).cast(pl.Duration("us")),
    })
