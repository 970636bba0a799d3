"""``explain``: a readable account of one interval, from the control plane alone.

Its decisions in the log's order (who, when, the run, the reason, the digest), every failed
check of the run that decided (region, table, keys or columns, observed vs threshold), the
earlier blocks and the drift table (region x column); whether its certification is stale (an
input inside its lookback changed since) and, when blocked, the earlier intervals inside its
lookback that were blocked or overridden themselves (:mod:`pipelines.certify.stale`); what
``lockstep explain`` and the Airflow page show.

Example::

    account = explain(spec, Interval.for_date("2026-01-02"))
    account["in_force"], [f["check_id"] for f in account["failed"] if f["blocking"]]
"""

from __future__ import annotations

import json
from typing import Any

import polars as pl

from pipelines.certify.read import active_certifications
from pipelines.control.decisions import decisions
from pipelines.control.results import load_results
from pipelines.spec import Interval, PipelineSpec


def explain(spec: PipelineSpec, interval: Interval, *, root: str | None = None) -> dict[str, Any]:
    """A readable account of an interval: its decisions, every failed check (region, table,
    keys or columns, observed vs threshold) and the drift table (region x column)."""
    root_ = spec.control_root(root)
    opts = spec.control_options()
    log = decisions(spec, root=root)
    mine = [d for d in log if d.interval == interval.key]
    # the control plane's results and what each region's steps recorded under its prefix
    df = load_results(root_, spec.name, interval.key, storage_options=opts, regions=spec.regions)
    last = mine[-1] if mine else None
    run_id = last.run_id if last is not None and last.kind == "gate" else None
    rec = df.filter(pl.col("stage") != "validation")
    if run_id is None and rec.height:
        run_id = rec.sort("recorded_at")["run_id"][-1]
    rec = rec.filter(pl.col("run_id") == (run_id or ""))
    # a reconciliation re-states the validation results its generation rests on (bound to
    # their versions); only without one do the newest validation results stand in
    val = (df.filter(pl.col("stage") == "validation").sort("recorded_at")
           .unique(subset=["region", "table", "check_id"], keep="last", maintain_order=True))
    rows = (rec.to_dicts() if rec.height else val.to_dicts()) if df.height else []
    failed = []
    drift: dict[str, dict[str, dict[str, Any]]] = {}
    for r in rows:
        details = json.loads(r["details"] or "{}")
        if r["check_type"] == "drift":
            cell = {"fail": not r["success"]}
            for c in details.get("comparisons", []):
                tag = "pooled" if c["against"] == "other regions" else "window"
                cell[f"psi_{tag}"] = c["psi"]
                cell[f"ks_{tag}"] = c["ks"]
            if details.get("column") and details.get("comparisons"):  # a column's comparison, not a
                drift.setdefault(r["region"], {})[details["column"]] = cell  # check about the evidence
        if not r["success"]:
            failed.append({
                "check_id": r["check_id"], "check_type": r["check_type"], "stage": r["stage"], "region": r["region"],
                "table": r["table"], "policy": r["policy"], "blocking": r["blocking"], "message": r["message"],
                "observed": json.loads(r["observed"] or "null"), "threshold": json.loads(r["threshold"] or "null"),
                "details": details,
            })
    active = active_certifications(spec, root=root, log=log)
    from pipelines.certify.stale import stale_certifications, stale_line, window_causes

    changed = stale_certifications(spec, root=root, log=log, intervals=[interval.key]).get(interval.key) or []
    blocked = bool(mine) and interval.key not in active
    return {
        "pipeline": spec.name,
        "interval": interval.key,
        "run_id": run_id,
        "in_force": active[interval.key].generation_id if interval.key in active else None,
        "decisions": [
            {"decision_id": d.decision_id, "status": d.status, "kind": d.kind, "generation_id": d.generation_id,
             "who": d.who, "approvers": d.approvers, "decided_at": d.decided_at, "run_id": d.run_id, "reason": d.reason,
             "expires_at": d.expires_at, "blocking_reasons": len(d.reasons), "log_version": d.log_version,
             "digest": d.digest}
            for d in mine
        ],
        "failed": sorted(failed, key=lambda f: (not f["blocking"], f["check_id"], f["region"])),
        "earlier_blocks": [
            {"decision_id": d.decision_id, "decided_at": d.decided_at, "generation_id": d.generation_id,
             "reasons": d.reasons}
            for d in mine[:-1] if not d.certified
        ],
        "drift": drift,
        # in force on inputs that changed since its certification (a backfilled earlier day)
        "stale": {"why": stale_line(changed), "changes": changed} if changed else None,
        # blocked, with earlier intervals inside its lookback that were themselves blocked or
        # overridden: their data is in this interval's windows (a drift, a total), a likely cause
        "window_causes": window_causes(spec, interval, root=root, log=log) if blocked else [],
    }
