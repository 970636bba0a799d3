"""Causes across intervals: stale certifications and earlier intervals inside a lookback.

A feature set reads its inputs over a lookback window (a 7-day sum reads seven days of
``raw``), so an interval's certification rests on earlier intervals' data too. From the
control plane alone (the decision log and the evidence store):

* :func:`stale_certifications`: an interval in force is **stale** when an input partition
  inside its lookback (its own interval included) was written *after* the input version its
  certification bound (``bindings["inputs"]``): the evidence shows a newer version of that
  partition (a backfilled or corrected earlier day) whose content (its files' hashes) differs
  from what a read at the bound version saw (a rewrite of the same rows is no change). Re-running it (``lockstep backfill``)
  recomputes its features from the new history and certifies again.
* :func:`window_causes`: the earlier intervals inside an interval's lookback that were
  themselves blocked or are in force only through an override: a block of this interval
  may be caused by their data (a drift or a total over a window holding them).

Example::

    stale_certifications(spec)["2026-01-03"][0]["input_interval"]     # '2026-01-01'
    [c["interval"] for c in window_causes(spec, Interval.for_date("2026-01-02"))]
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pipelines.certify.read import active_certifications
from pipelines.control.decisions import Decision, decisions
from pipelines.control.evidence import EvidenceSet, load
from pipelines.evidence import Profile
from pipelines.generation import member_key
from pipelines.spec import Interval, PipelineSpec


def lookback_intervals(spec: PipelineSpec, interval: Interval, lookback: timedelta) -> list[str]:
    """The interval keys ``lookback`` reaches back over from ``interval`` (its own included)."""
    keys, start = [], interval.start - lookback
    step = spec.interval_length
    at = interval.start
    while at >= start:
        keys.append(spec.interval_at(at).key)
        at -= step
    return sorted(set(keys))


def _reads(spec: PipelineSpec, interval: Interval) -> list[tuple[str, str, str, list[str]]]:
    """(output table, input table path, input table name, interval keys read) of every
    feature set's input (reference inputs are read for the interval itself)."""
    out = []
    for fs in spec.features:
        for name in fs.inputs:
            t = spec.table(name)
            back = timedelta(0) if t.layer == "reference" else fs.lookback
            out.append((fs.output, t.path, t.name, lookback_intervals(spec, interval, back)))
    return out


def stale_certifications(spec: PipelineSpec, *, root: str | None = None, log: list[Decision] | None = None,
                         intervals: list[str] | None = None) -> dict[str, list[dict[str, Any]]]:
    """Interval -> what changed under its certification in force since it was made: one entry
    per (region, feature table, input partition) whose evidence shows a version newer than
    the input version bound (``{"region", "table", "input", "input_interval", "bound_version",
    "newer_version"}``). Intervals not in force, or whose certification bound no inputs, are
    not listed. ``intervals``: only these (default: every interval in force)."""
    log = decisions(spec, root=root) if log is None else log
    active = active_certifications(spec, log=log)
    keys = [k for k in (intervals if intervals is not None else sorted(active)) if k in active]
    if not keys:
        return {}
    plans = {k: _reads(spec, spec.interval_at(active[k].interval_start)) for k in keys}
    wanted: dict[str, set[str]] = {}  # input table -> the interval keys whose evidence is needed
    for reads in plans.values():
        for _, _, name, ivs in reads:
            wanted.setdefault(name, set()).update(ivs)
    evidence = {name: load(spec, sorted(ivs), root=root, table=name) for name, ivs in wanted.items()}
    out: dict[str, list[dict[str, Any]]] = {}
    for key in keys:
        bound = (active[key].bindings or {}).get("inputs") or {}
        changes = []
        for output, path, name, ivs in plans[key]:
            t_out, t_in = spec.table(output), spec.table(name)
            for region in spec.regions:
                version = (bound.get(member_key(region, t_out.layer, t_out.name)) or {}).get(path)
                if version is None:
                    continue  # bound no inputs (written before certifications bound them): cannot tell
                for iv in ivs:
                    p = evidence[name].newest(region, t_in.layer, t_in.name, iv)
                    if p is not None and p.version > int(version) and _content(p) != _content(
                            _read_then(evidence[name], region, t_in.layer, t_in.name, iv, int(version))):
                        changes.append({"region": region, "table": t_out.path, "input": path, "input_interval": iv,
                                        "bound_version": int(version), "newer_version": p.version})
        if changes:
            out[key] = changes
    return out


def _read_then(ev: EvidenceSet, region: str, layer: str, table: str, interval: str, version: int) -> Profile | None:
    """The profile of the partition as a read at table ``version`` saw it (None: it held nothing)."""
    mine = [p for p in ev.profiles if (p.region, p.layer, p.table, p.interval) == (region, layer, table, interval)
            and p.version <= version]
    return max(mine, key=lambda p: p.version, default=None)


def _content(p: Profile | None) -> list[str] | None:
    """A partition's data by content (its files' hashes, whatever their names)."""
    return None if p is None else sorted(str(f.get("sha256")) for f in p.files.values())


def stale_line(changes: list[dict[str, Any]]) -> str:
    """One short line naming what changed under a stale certification (input partitions first)."""
    parts = sorted({f"{c['input']} {c['input_interval']}" for c in changes})
    regions = sorted({c["region"] for c in changes})
    return (f"stale: {', '.join(parts[:2])}" + (f" (+{len(parts) - 2} more)" if len(parts) > 2 else "")
            + f" changed since certification (in {', '.join(regions)})")


def window_causes(spec: PipelineSpec, interval: Interval, *, root: str | None = None,
                  log: list[Decision] | None = None) -> list[dict[str, Any]]:
    """The earlier intervals inside ``interval``'s lookback whose own newest decision blocked
    them, or which are in force only through an override: ``{"interval", "state" (blocked |
    overridden), "generation_id", "checks" (``check_id@region``), "regions"}``, oldest first."""
    log = decisions(spec, root=root) if log is None else log
    active = active_certifications(spec, log=log)
    back = max((fs.lookback for fs in spec.features), default=timedelta(0))
    newest: dict[str, Decision] = {}
    for d in log:
        newest[d.interval] = d
    out = []
    for key in lookback_intervals(spec, interval, back):
        if key == interval.key or key not in newest:
            continue
        live = active.get(key)
        state = "overridden" if live is not None and live.kind == "override" else \
            "blocked" if live is None and not newest[key].certified else ""
        if not state:
            continue
        d = live or newest[key]
        reasons = d.reasons
        out.append({"interval": key, "state": state, "generation_id": d.generation_id,
                    "checks": sorted({f"{r['check_id']}@{r.get('region')}" for r in reasons}),
                    "regions": sorted({str(r.get("region")) for r in reasons})})
    return out
