"""What a pipeline holds now: per region and table, its version, intervals and rows, the
generation in force, the intervals blocked and why, and overrides in force. Read from the
control plane alone: the regions' tables are described by the evidence each region published
about the versions it wrote (no regional table is opened, so a control key suffices)."""

from __future__ import annotations

from typing import Any

import polars as pl

from pipelines.certify import active_certifications, current_certified, decisions
from pipelines.control.evidence import published
from pipelines.spec import PipelineSpec


def published_tables_by_interval(spec: PipelineSpec, *, root: str | None = None) -> pl.DataFrame:
    """Per region, layer, table and interval, the newest profile published (its version, rows)."""
    ev = published(spec, root=root)
    return (ev.sort("version", "recorded_at")
            .group_by("region", "layer", "table", "interval", maintain_order=True).last())


def published_tables(spec: PipelineSpec, *, root: str | None = None) -> pl.DataFrame:
    """Per region, layer and table, from the evidence store: the newest version published,
    the number of intervals, the latest interval with its rows, and the rows of every
    interval's newest version. One row per (region, layer, table) that published anything."""
    return (published_tables_by_interval(spec, root=root).sort("interval")
            .group_by("region", "layer", "table", maintain_order=True)
            .agg(version=pl.col("version").max(), intervals=pl.len(), latest_interval=pl.col("interval").last(),
                 latest_rows=pl.col("rows").last(), rows=pl.col("rows").sum()))


def pipeline_status(spec: PipelineSpec, *, root: str | None = None) -> dict[str, Any]:
    by_table = {(r["region"], r["layer"], r["table"]): r for r in published_tables(spec, root=root).iter_rows(named=True)}
    tables = []
    for region in spec.regions:
        for t in [*spec.tables, *[t.model_copy(update={"layer": "quarantine"}) for t in spec.tables_in("raw", "features")]]:
            got = by_table.get((region, t.layer, t.name))
            if got is None and t.layer == "quarantine":
                continue
            tables.append({
                "region": region, "table": t.path, "version": None if got is None else got["version"],
                "intervals": 0 if got is None else got["intervals"],
                "latest_interval": None if got is None else got["latest_interval"],
                "latest_rows": 0 if got is None else int(got["latest_rows"] or 0),
                "rows": 0 if got is None else int(got["rows"] or 0),
            })
    all_decisions = decisions(spec, root=root)
    active = active_certifications(spec, root=root, log=all_decisions)
    cur = current_certified(spec, root=root, log=all_decisions)
    latest_by_interval: dict[str, Any] = {}
    for d in all_decisions:
        latest_by_interval[d.interval] = d
    # blocked: not certified now (never, revoked by a rollback, or an override expired) and
    # the newest decision about it is a block
    from pipelines.matrix import at_fault

    regions = list(spec.regions)
    blocked = [
        {"interval": d.interval, "decided_at": d.decided_at, "generation_id": d.generation_id,
         "reasons": [f"{r['check_id']} {r['region']}/{r['table']}: {r['message']}" for r in d.reasons],
         "at_fault": sorted({x for r in d.reasons for x in at_fault(r, regions)}, key=regions.index)}
        for d in latest_by_interval.values() if not d.certified and d.interval not in active
    ]
    from pipelines.certify.stale import stale_certifications, stale_line

    stale = [{"interval": k, "generation_id": active[k].generation_id, "why": stale_line(changes), "changes": changes}
             for k, changes in stale_certifications(spec, root=root, log=all_decisions).items()]
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
        "stale": stale,
        "overrides_in_force": overrides,
    }
