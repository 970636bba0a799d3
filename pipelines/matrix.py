"""The region x interval certification matrix: what an operator looks at first.

One cell per (region, interval), folded from the certification log (the same rows
``lockstep status`` and ``explain`` read) and the evidence store (which intervals hold data:
the profiles regions published about their raw tables). The control plane alone: no regional
table is opened. A cell's state is one of
:data:`STATES`:

* ``certified``: the interval's generation is in force (a gate certified it, or a rollback
  re-instated it);
* ``stale``: in force, but an input partition inside its lookback was written after its
  certification (:mod:`pipelines.certify.stale`); ``lockstep backfill`` re-certifies it;
* ``overridden``: in force through an operator's override of a block;
* ``blocked``: the newest decision blocked it because of this region (a reason at fault here:
  its own check, or a cross-region check whose message names it), or the override that
  certified it expired;
* ``held``: the interval is blocked, but by other regions only (``held_by`` names them);
* ``rolled back``: it was certified, and a pipeline-wide rollback to an earlier interval revoked it;
* ``not run``: no decision about the interval yet.

A decision covers the whole generation, so a block holds every region; only the regions at
fault (:func:`at_fault`) are ``blocked``, each cell naming its first reason; the others are
``held``, their reason ``held by <regions>: <check id>`` (the regions at fault and the check,
never its message: that states the other region's data).

>>> m = certification_matrix(spec, last=7)            # doctest: +SKIP
>>> m["cells"]["2026-01-02"]["ap-south"]["state"]
'blocked'
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import polars as pl

from pipelines.certify import Decision, active_certifications, current_certified, decisions
from pipelines.spec import PipelineSpec

STATES = ("certified", "stale", "blocked", "held", "overridden", "rolled back", "not run")


def at_fault(reason: dict[str, Any], regions: list[str]) -> list[str]:
    """The regions a blocking reason is about: its own region, or for a cross-region check
    (region ``*``) the regions its message or observation names (a missing profile, a drift
    window's region); every region only when it names none (a truly pipeline-wide fault)."""
    own = reason.get("region")
    if own not in ("*", None, ""):
        return [str(own)]
    text = f"{reason.get('message', '')} {json.dumps(reason.get('observed'), default=str)}"
    named = [r for r in regions if re.search(rf"(?<![a-z0-9-]){re.escape(r)}(?![a-z0-9-])", text)]
    return named or list(regions)


def _first_reason(d: Decision, region: str, regions: list[str]) -> tuple[str, str, list[str]]:
    """(text, check id, regions at fault) for ``region``'s cell: the first reason at fault in
    ``region``; else (it is held by others) ``held by <regions>: <check id>`` naming them and
    the check only (the message is about the regions at fault, not this one)."""
    faults = [(r, at_fault(r, regions)) for r in d.reasons]
    own = [(r, f) for r, f in faults if region in f]
    if own:
        r, _ = own[0]
        where = f" {r.get('table', '')}" if r.get("region") not in ("*", None, "") else ""
        return f"{r['check_id']}{where}: {r['message']}", str(r["check_id"]), [region]
    if faults:
        # the regions at fault and the check, never the check's message: it states another
        # region's data (counts, values, drift), which a region-scoped operator may not read
        by = sorted({x for _, f in faults for x in f}, key=regions.index)
        r, _ = faults[0]
        return f"held by {', '.join(by)}: {r['check_id']}", str(r["check_id"]), by
    return "", "", []


def intervals_with_data(spec: PipelineSpec, root: str | None) -> dict[str, set[str]]:
    """Region -> interval keys its raw tables hold rows for, as its evidence states (the
    newest profile of each raw table and interval)."""
    from pipelines.status import published_tables_by_interval

    raw = published_tables_by_interval(spec, root=root).filter(pl.col("layer") == "raw", pl.col("rows") > 0)
    out: dict[str, set[str]] = {region: set() for region in spec.regions}
    for region, interval in raw.select("region", "interval").iter_rows():
        out.setdefault(region, set()).add(interval)
    return out


def certification_matrix(
    spec: PipelineSpec, *, root: str | None = None, last: int = 7, now: datetime | None = None,
    log: list[Decision] | None = None, intervals: list[str] | None = None,
) -> dict[str, Any]:
    """The newest ``last`` intervals (decided or holding data) x every region; ``intervals``:
    these interval keys instead, in this order (a page of the calendar, :func:`matrix_page`).

    Returns ``{"pipeline", "regions", "intervals", "cells": {interval: {region: cell}},
    "in_force", "decisions"}``; a cell is ``{"state", "reason", "check_id", "decision_id",
    "generation_id", "run_id", "who", "decided_at", "has_data", "at_fault", "held_by"}``
    (``at_fault``: the regions the block is about; ``held_by``: the same, on a held cell).
    """
    now = now or datetime.now(UTC)
    log = decisions(spec, root=root) if log is None else log
    active = active_certifications(spec, log=log, now=now)
    by_interval: dict[str, list[Decision]] = {}
    for d in log:
        by_interval.setdefault(d.interval, []).append(d)
    data = intervals_with_data(spec, root)
    if intervals is None:
        keys = set(by_interval) | {k for ks in data.values() for k in ks}
        intervals = sorted(keys)[-last:] if last > 0 else sorted(keys)

    from pipelines.certify.stale import stale_certifications, stale_line

    stale = stale_certifications(spec, root=root, log=log, intervals=intervals)
    regions = list(spec.regions)
    cells: dict[str, dict[str, dict[str, Any]]] = {}
    for key in intervals:
        mine = by_interval.get(key, [])
        row: dict[str, dict[str, Any]] = {}
        for region in spec.regions:
            has_data = key in data.get(region, set())
            cell: dict[str, Any] = {"state": "not run", "reason": "", "check_id": "", "decision_id": "",
                                    "generation_id": "", "run_id": "", "who": "", "decided_at": None,
                                    "has_data": has_data, "at_fault": [], "held_by": [],
                                    "stale": False}
            if key in active:
                d = active[key]
                state = {"gate": "certified", "override": "overridden", "rollback": "certified"}.get(d.kind, "certified")
                reason = ""
                by = d.who + (f", approved by {', '.join(d.approvers)}" if d.approvers else "")
                if d.kind == "override":
                    overridden, cid, _ = _first_reason(d, region, regions)
                    reason = f"override by {by}: {d.reason}" + (f" (despite {overridden})" if overridden else "")
                    cell["check_id"] = cid
                elif d.kind == "rollback":
                    reason = f"re-instated by rollback ({by}: {d.reason})"
                changed = [c for c in stale.get(key, []) if c["region"] == region]
                if changed:  # in force, on inputs that changed since: re-certify with a backfill
                    state, reason = "stale", stale_line(changed) + (f"; {reason}" if reason else "")
                cell.update(state=state, reason=reason, stale=bool(changed))
            elif mine:
                d = mine[-1]
                if d.certified:
                    revoker = next((r for r in log if r.pipeline_wide and _after(r, d)
                                    and r.interval_start < d.interval_start), None)
                    if revoker is not None:
                        cell.update(state="rolled back",
                                    reason=f"revoked by rollback to {revoker.interval} (pipeline-wide; {revoker.who}: "
                                           f"{revoker.reason})")
                    else:
                        text, cid, _ = _first_reason(d, region, regions)
                        cell.update(state="blocked", check_id=cid,
                                    reason=f"override expired at {d.expires_at:%Y-%m-%d %H:%M}" if d.expires_at
                                    else text)
                else:
                    text, cid, faulty = _first_reason(d, region, regions)
                    held = region not in faulty
                    cell.update(state="held" if held else "blocked", reason=text, check_id=cid,
                                at_fault=faulty, held_by=faulty if held else [])
            elif has_data:
                cell["reason"] = "data written, no gate decision yet"
            if cell["state"] != "not run":
                d = active.get(key) or mine[-1]
                cell.update(decision_id=d.decision_id, generation_id=d.generation_id,
                            run_id=next((x.run_id for x in reversed(mine) if x.kind == "gate"), d.run_id),
                            who=d.who, decided_at=d.decided_at)
            row[region] = cell
        cells[key] = row

    current = current_certified(spec, root=root, log=log)
    return {
        "pipeline": spec.name,
        "regions": list(spec.regions),
        "intervals": intervals,
        "cells": cells,
        "in_force": None if current is None else {
            "generation_id": current.generation_id, "interval": current.interval, "kind": current.kind,
            "who": current.who, "decided_at": current.decided_at, "reason": current.reason,
            "expires_at": current.expires_at, "members": current.generation.members,
        },
        "decisions": [
            {"decision_id": d.decision_id, "interval": d.interval, "status": d.status, "kind": d.kind,
             "generation_id": d.generation_id, "who": d.who, "approvers": d.approvers, "reason": d.reason,
             "decided_at": d.decided_at,
             "expires_at": d.expires_at, "run_id": d.run_id, "reasons": len(d.reasons)}
            for d in reversed(log)
        ],
    }


def _after(a: Any, b: Any) -> bool:
    """Was decision ``a`` committed after ``b``? (The log's order, never the deciders' clocks.)"""
    return (a.log_version if a.log_version is not None else -1) > (b.log_version if b.log_version is not None else -1)
