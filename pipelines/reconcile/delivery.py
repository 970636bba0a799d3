"""Delivery: did every region deliver this interval in this run? One result per region.

A region delivered when it published evidence of every table for the interval and the
orchestrator did not see one of its steps fail in this run. Otherwise the region blocks the
generation, named, with why: the orchestrator's view (``undelivered``: e.g. ``ingest:
failed``), the error its failing step recorded under its prefix (``stage="delivery"``), and
what there is no evidence of. An outage is a decision: the gate records it, the alert names
the region, ``explain`` shows it, and a re-run after the region recovers certifies.
"""

from __future__ import annotations

from pipelines.control.results import CheckResult
from pipelines.reconcile.context import Context


def check_delivery(ctx: Context) -> list[CheckResult]:
    spec, key = ctx.spec, ctx.interval.key
    out = []
    for region in spec.regions:
        missing = [t.path for t in spec.tables
                   if t.layer != "quarantine" and ctx.version(region, t) is None]
        failure = ctx.failures.get(region)
        seen = ctx.undelivered.get(region)
        parts = []
        if seen is not None:
            parts.append(f"did not deliver in run {ctx.run_id or '(none)'} ({seen})")
        if failure is not None and (seen is not None or missing):
            parts.append(failure.message)
        if missing:
            parts.append(f"no evidence for {', '.join(missing)} at {key}")
        elif seen is not None:
            parts.append("its evidence is from an earlier run, not this one's")
        ok = not parts
        out.append(CheckResult(
            stage="reconcile", check_id="delivery", check_type="delivery", region=region, table="*",
            policy="block", success=ok, observed=missing, threshold=[],
            message=f"{region}: delivered every table of {key}" if ok else f"{region}: " + "; ".join(parts),
            details={"undelivered": seen, "missing": missing, "error": None if failure is None else failure.message},
        ))
    return out
