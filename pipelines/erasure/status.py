"""``lockstep erase --status``: every erasure, requested, carried out, removed.

Folded from the approvals log (requests for ``erase``, with their approvals) and the erasure
log (``erase`` per region, ``recertify``, ``removal`` per region). An erasure is *pending*
until ``lockstep maintain`` deleted the older files in every region it erased rows from;
then *completed*, with the time from the request to that removal.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pipelines.control.erasures import erasure_events
from pipelines.governance import requests
from pipelines.spec import PipelineSpec


def erasure_status(spec: PipelineSpec, *, root: str | None = None) -> list[dict[str, Any]]:
    """One row per erasure (and per erasure request not carried out yet), oldest first."""
    by_id: dict[str, dict[str, Any]] = {}
    for e in erasure_events(spec, root=root):
        row = by_id.setdefault(e["erasure_id"], {
            "erasure_id": e["erasure_id"], "column": e["column"], "values_count": e["values_count"],
            "values_digest": e["values_digest"], "who": e["who"], "reason": e["reason"], "request_id": e["request_id"],
            "approvers": e["approvers"], "requested_at": e["requested_at"], "erased_at": e["at"], "rows": 0,
            "regions": [], "removed": {}, "intervals": {}})
        if e["event"] == "erase":
            rows = sum(int(t.get("rows") or 0) for t in e["tables"].values())
            row["rows"] += rows
            if rows:
                row["regions"].append(e["region"])
        elif e["event"] == "recertify":
            row["intervals"] = e["intervals"]
        elif e["event"] == "removal":
            row["removed"][e["region"]] = e["at"]
    out = []
    for row in by_id.values():
        removed = row.pop("removed")
        done = all(r in removed for r in row["regions"])
        removed_at = max(removed.values()) if done and removed else (row["erased_at"] if done else None)
        row.update(state="completed" if done else "pending: awaiting `lockstep maintain`", removed_at=removed_at,
                   seconds_to_removal=None if removed_at is None else
                   round((removed_at - row["requested_at"]).total_seconds(), 3))
        out.append(row)
    for req in requests(spec, root=root):
        if req.action == "erase" and req.state() in ("pending", "approved"):
            out.append({"erasure_id": None, "column": req.params.get("column"),
                        "values_count": req.params.get("values_count"), "values_digest": req.digest,
                        "who": req.requester, "reason": req.reason, "request_id": req.request_id,
                        "approvers": req.approvers, "requested_at": req.requested_at, "erased_at": None, "rows": None,
                        "regions": [], "intervals": {}, "removed_at": None, "seconds_to_removal": None,
                        "state": f"pending: request {req.state()}"})
    return sorted(out, key=lambda r: r["requested_at"] or datetime.min.replace(tzinfo=UTC))
