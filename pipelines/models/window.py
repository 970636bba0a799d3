"""The evaluation window of a promotion: is every interval certified in every region, from
the control plane only (the decision log and the evidence store)?

For each (region, interval) of the window the answer is ``certified`` or one reason, named:

* ``not run``: no decision about the interval (with or without evidence published for it);
* ``blocked``: its newest decision blocked it (the first reason naming the region is quoted);
* ``override expired``: it was in force only through an override whose expiry has passed;
* ``rolled back``: its certification was revoked by a rollback to an earlier generation;
* ``stale profile``: certified, but the evidence no longer describes what is in force: no
  evidence for a certified version, evidence profiled under another plan than the spec's, or
  the table rewritten after certification (evidence for a newer version of the interval).

Example::

    state = window_state(spec, ["2026-01-01T00:00", "2026-01-01T00:15"])
    state.reasons        # [] when every interval is certified in every region
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import polars as pl

from pipelines.certify import Decision, active_certifications, decisions
from pipelines.control.evidence import evidence_uri
from pipelines.control.tables import EVIDENCE_TABLE
from pipelines.errors import EvidenceError
from pipelines.evidence import plan_hash, profile_plan
from pipelines.matrix import _first_reason
from pipelines.spec import PipelineSpec

#: the check id of a reason about the evaluation window
WINDOW_CHECK = "promotion.window"


@dataclass
class WindowState:
    """What the control plane says about each (region, interval) of an evaluation window."""

    keys: list[str]
    active: dict[str, Decision]  # interval -> the certification in force (only the window's)
    reasons: list[dict[str, Any]] = field(default_factory=list)

    def certified(self, region: str, key: str) -> bool:
        return key in self.active and not any(r["region"] == region and r["interval"] == key for r in self.reasons)


def window_keys(spec: PipelineSpec, until: str, n: int) -> list[str]:
    """The keys of the ``n`` consecutive intervals ending with ``until``'s."""
    last = spec.interval_at(until)
    return [spec.interval_at(last.start - k * spec.interval_length).key for k in reversed(range(n))]


def newest_decided(log: list[Decision]) -> str | None:
    """The newest interval the decision log has a decision about (the default window's end)."""
    return max(log, key=lambda d: d.interval_start).interval if log else None


def _reason(region: str, key: str, state: str, message: str) -> dict[str, Any]:
    return {"check_id": WINDOW_CHECK, "region": region, "interval": key, "state": state,
            "message": f"{region} {key}: {state}: {message}"}


def _evidence(spec: PipelineSpec, keys: list[str], root: str | None) -> pl.DataFrame:
    """(interval, region, layer, table, version, plan_hash) of every profile published about
    the window's intervals: their partitions of each region's evidence store (under the
    region's prefix), nothing else; a store that cannot be read is an error naming it."""
    opts = spec.control_options()
    cols = ["interval", "region", "layer", "table", "version", "plan_hash"]
    frames = []
    for region in spec.regions:
        uri = evidence_uri(spec, region, root)
        try:
            dt = EVIDENCE_TABLE.open(uri, opts)
            if dt is not None:
                frames += [EVIDENCE_TABLE.scan(dt, opts, partition={"interval": k}).select(cols).collect()
                           for k in keys]
        except Exception as exc:  # fail closed: what cannot be read blocks, named
            raise EvidenceError(f"{uri}: cannot read {region}'s evidence: {exc}") from exc
    return pl.concat(frames, how="vertical_relaxed") if frames else EVIDENCE_TABLE.empty().select(cols)


def _stale(spec: PipelineSpec, region: str, d: Decision, evidence: dict[tuple[str, str], list[tuple[int, str]]],
           plans: dict[str, str]) -> str | None:
    """Why the certified generation's evidence in ``region`` no longer describes what is in
    force, or None."""
    for member, version in sorted(d.generation.members.items()):
        reg, layer, table = member.split("/", 2)
        if reg != region or table not in plans:
            continue
        published = evidence.get((d.interval, member), [])
        at = [p for v, p in published if v == version]
        if not at:
            return f"no evidence for {member} at its certified version {version}"
        if plans[table] not in at:
            return (f"{member} version {version} was profiled under plan {at[-1]}; the spec's plan is "
                    f"{plans[table]} (re-run the interval to publish it again)")
        newer = max(v for v, _ in published)
        if newer > version:
            return f"{member} was rewritten after certification (evidence for version {newer}; certified {version})"
    return None


def window_state(spec: PipelineSpec, keys: list[str], *, root: str | None = None, now: datetime | None = None,
                 log: list[Decision] | None = None) -> WindowState:
    """Every (region, interval) of ``keys`` that is not certified, with its reason."""
    now = now or datetime.now(UTC)
    log = decisions(spec, root=root) if log is None else log
    active = active_certifications(spec, log=log, now=now)
    mine: dict[str, list[Decision]] = {}
    for d in log:
        if d.interval in keys:
            mine.setdefault(d.interval, []).append(d)
    evidence: dict[tuple[str, str], list[tuple[int, str]]] = {}
    for row in _evidence(spec, keys, root).iter_rows(named=True):
        member = f"{row['region']}/{row['layer']}/{row['table']}"
        evidence.setdefault((row["interval"], member), []).append((row["version"], row["plan_hash"]))
    plans = {t.name: plan_hash(profile_plan(spec, t)) for t in spec.tables if t.layer != "quarantine"}
    state = WindowState(keys, {k: active[k] for k in keys if k in active})
    for key in keys:
        for region in spec.regions:
            reason = _region_reason(spec, region, key, active.get(key), mine.get(key, []), log, evidence, plans)
            if reason is not None:
                state.reasons.append(reason)
    return state


def _region_reason(spec: PipelineSpec, region: str, key: str, in_force: Decision | None, mine: list[Decision],
                   log: list[Decision], evidence: dict[tuple[str, str], list[tuple[int, str]]],
                   plans: dict[str, str]) -> dict[str, Any] | None:
    if in_force is not None:
        stale = _stale(spec, region, in_force, evidence, plans)
        return None if stale is None else _reason(region, key, "stale profile", stale)
    if not mine:
        published = any(k[0] == key and k[1].startswith(f"{region}/") for k in evidence)
        return _reason(region, key, "not run", "evidence published, no gate decision" if published
                       else "no decision and no evidence")
    certifying = [d for d in mine if d.certified]
    if certifying:
        last = certifying[-1]
        revoked = any(r.pipeline_wide and (r.log_version or -1) > (last.log_version or -1)
                      and r.interval_start < last.interval_start for r in log)
        if revoked:
            return _reason(region, key, "rolled back", "its certification was revoked by a rollback to an earlier "
                           "generation")
        if last.kind == "override" and last.expires_at is not None:
            return _reason(region, key, "override expired", f"in force only through the override of "
                           f"{last.generation_id} by {last.who}, which expired at {last.expires_at:%Y-%m-%d %H:%M:%S} UTC")
    text, _, _ = _first_reason(mine[-1], region, list(spec.regions))
    return _reason(region, key, "blocked", text or f"the newest decision ({mine[-1].decision_id}) blocked it")
