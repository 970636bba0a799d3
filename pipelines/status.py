"""What a pipeline holds now: per region and table, its version, intervals and rows, the
generation in force, the intervals blocked and why, and overrides in force. Read from the
Delta logs only (no data files are scanned)."""

from __future__ import annotations

from typing import Any

import polars as pl
import pyarrow as pa

from pipelines.certify import active_certifications, current_certified, decisions
from pipelines.spec import PipelineSpec
from pipelines.storage import open_table


def table_partitions(uri: str, storage_options: dict[str, str] | None = None) -> tuple[int | None, pl.DataFrame]:
    """(version, rows per ds) of a table, from its log's file statistics."""
    dt = open_table(uri, storage_options)
    if dt is None:
        return None, pl.DataFrame(schema={"ds": pl.String, "rows": pl.Int64})
    actions = pl.from_arrow(pa.table(dt.get_add_actions(flatten=True)))
    assert isinstance(actions, pl.DataFrame)
    if actions.is_empty() or "partition.ds" not in actions.columns:
        return dt.version(), pl.DataFrame(schema={"ds": pl.String, "rows": pl.Int64})
    per_ds = actions.group_by(pl.col("partition.ds").alias("ds")).agg(rows=pl.col("num_records").sum()).sort("ds")
    return dt.version(), per_ds


def pipeline_status(spec: PipelineSpec, *, root: str | None = None) -> dict[str, Any]:
    tables = []
    for region in spec.regions:
        for t in [*spec.tables, *[t.model_copy(update={"layer": "quarantine"}) for t in spec.tables_in("raw", "features")]]:
            version, per_ds = table_partitions(spec.table_uri(region, t.layer, t.name, root), spec.region_options(region))
            if version is None and t.layer == "quarantine":
                continue
            latest = per_ds.tail(1).to_dicts()
            tables.append({
                "region": region, "table": t.path, "version": version, "intervals": per_ds.height,
                "latest_interval": latest[0]["ds"] if latest else None,
                "latest_rows": int(latest[0]["rows"]) if latest else 0,
                "rows": int(per_ds["rows"].sum()) if per_ds.height else 0,
            })
    all_decisions = decisions(spec, root=root)
    active = active_certifications(spec, root=root, log=all_decisions)
    cur = current_certified(spec, root=root)
    latest_by_interval: dict[str, Any] = {}
    for d in all_decisions:
        latest_by_interval[d.interval] = d
    # blocked: not certified now (never, revoked by a rollback, or an override expired) and
    # the newest decision about it is a block
    blocked = [
        {"interval": d.interval, "decided_at": d.decided_at, "generation_id": d.generation_id,
         "reasons": [f"{r['check_id']} {r['region']}/{r['table']}: {r['message']}" for r in d.reasons]}
        for d in latest_by_interval.values() if not d.certified and d.interval not in active
    ]
    overrides = [
        {"interval": d.interval, "generation_id": d.generation_id, "who": d.who, "reason": d.reason,
         "expires_at": d.expires_at, "overridden_reasons": len(d.reasons)}
        for d in active.values() if d.kind == "override"
    ]
    return {
        "pipeline": spec.name,
        "root": spec.root(root),
        "tables": tables,
        "certified": None if cur is None else {
            "generation_id": cur.generation_id, "interval": cur.interval, "kind": cur.kind, "who": cur.who,
            "decided_at": cur.decided_at, "reason": cur.reason, "expires_at": cur.expires_at,
        },
        "blocked": blocked,
        "overrides_in_force": overrides,
    }
