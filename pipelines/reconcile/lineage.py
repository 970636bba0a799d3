"""Lineage: every derived version in a generation was computed from that generation's inputs.

A transform records, in the profile of the version it writes, each input's Delta version and
the data files of every partition it read (the lookback's included). The generation names
one version per (region, table); certifying it pairs each features version with the input
versions beside it, so the two must agree:

* the interval's own partition: the derived version was computed from the input version in
  the generation, or from another version whose partition held exactly the same files
  (a later interval's landing moves the table's version, not this partition);
* each lookback partition: the files read are the ones its newest evidence describes
  (an earlier interval re-delivered after this one was computed makes it stale).

Anything else blocks, naming both versions: "eu-west/features/card_features v4 was computed
from raw/transactions v4, the generation holds raw/transactions v5". A derived version
with no recorded inputs is unbound, and blocks too.
"""

from __future__ import annotations

from typing import Any

from pipelines.control.results import CheckResult
from pipelines.evidence import Profile
from pipelines.reconcile.context import Context
from pipelines.spec import partition_key


def _files(p: Profile) -> set[str] | None:
    """The data files a profile records (None: it records none, so nothing can be compared)."""
    return set(p.files) if p.files else None


def check_lineage(ctx: Context) -> list[CheckResult]:
    spec = ctx.spec
    out: list[CheckResult] = []
    for region in spec.regions:
        for fs in spec.features:
            t = spec.table(fs.output)
            p = ctx.profile(region, t)
            if p is None:
                continue  # no profile: generation.complete blocks
            problems: list[str] = []
            bound: dict[str, Any] = {}
            who = f"{region}/{t.path} v{p.version}"
            if not p.inputs:
                problems.append(f"{who} records no inputs (computed before lineage was recorded): it is not bound to "
                                "what it was computed from; re-run the region's transform")
            for name in fs.inputs if p.inputs else []:
                it = spec.table(name)
                rec = p.inputs.get(it.path)
                if rec is None:
                    problems.append(f"{who} records no read of {it.path}")
                    continue
                held = ctx.version(region, it)
                ip = ctx.profile(region, it)
                read_version = rec.get("version")
                parts: dict[str, list[str]] = rec.get("partitions") or {}
                own = partition_key(ctx.interval.partition(it.partition_by))
                bound[it.path] = {"read": read_version, "held": held}
                if held is None or ip is None:
                    continue  # the input has no profile: generation.complete blocks
                if read_version != held:
                    same = _files(ip) is not None and set(parts.get(own, [])) == _files(ip)
                    if not same:
                        problems.append(f"{who} was computed from {it.path} v{read_version}, the generation holds "
                                        f"{it.path} v{held}; re-run the region's transform for {ctx.interval.key}")
                        continue
                # the lookback: each earlier partition read as its newest evidence describes it
                earlier = [k for k in parts if k != own]
                if not earlier:
                    continue
                ev = ctx.window(earlier, it.name)
                for key in earlier:
                    newest = ev.newest(region, it.layer, it.name, key)
                    if newest is None:
                        continue  # no evidence of that interval: lookback coverage reports the gap
                    now_files = _files(newest)
                    changed = (set(parts[key]) != now_files) if now_files is not None else (
                        read_version is not None and newest.version > read_version)
                    if changed:
                        problems.append(f"{who} read {it.path} of {key} as of v{read_version}; {key} has been re-written "
                                        f"since (v{newest.version}): {ctx.interval.key} is stale; re-run it (its "
                                        "lookback changed)")
            out.append(CheckResult(
                stage="reconcile", check_id=f"lineage.{t.name}", check_type="lineage", region=region, table=t.path,
                policy="block", success=not problems, observed=bound, threshold="inputs of the same generation",
                table_version=p.version,
                message="; ".join(problems) if problems else f"{who} was computed from the generation's inputs",
                details={"inputs": p.inputs and {k: v.get("version") for k, v in p.inputs.items()}}))
    return out
