"""Replicated-table parity, the spec's check: every region of the generation against the consensus.

Regions are grouped by their whole-table digest (16 bytes each); each region outside the
largest group is compared with a consensus region by key through the digest-tree descent
(:func:`pipelines.reconcile.descent.compare`), over the profiles' keyed digests, or the
region-local step for a table too large to carry one. One result per region.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pipelines.privacy import Masker
from pipelines.reconcile.descent import ParityReport, compare
from pipelines.reconcile.sides import EvidenceSide, Side


def _side(ctx: Any, region: str, table: Any, profile: Any, keys: list[str]) -> Side:
    """The region's side of a descent: its profile's keyed digest; for a table too large to
    carry one, the region-local step (the region hashes its own version of the table and
    answers with keys and hashes; values only where residency allows)."""
    digest = profile.digest
    keyed = profile.keyed
    if keyed is not None:
        return EvidenceSide(keyed, keys, digest["columns"], name=region)
    from pipelines.storage import read_table

    frame = read_table(ctx.spec.table_uri(region, table.layer, table.name, ctx.root), version=profile.version,
                       partition=ctx.interval.partition(table.partition_by),
                       storage_options=ctx.spec.region_options(region)).collect()
    return Side(frame.drop([c for c in table.partition_by if c in frame.columns]), keys, digest["columns"], name=region)


def _masked(report: ParityReport, masker: Masker, personal: frozenset[str]) -> ParityReport:
    """The report with the personal columns of its keys and samples hashed."""
    return replace(report, only_in_a=masker.frame(report.only_in_a, personal),
                   only_in_b=masker.frame(report.only_in_b, personal),
                   changed=masker.frame(report.changed, personal),
                   samples=masker.tree(report.samples, personal))


def check_parity(ctx: Any, check: Any) -> list[Any]:
    """Parity of a replicated table across every region of the generation, from profiles.

    Regions are grouped by their whole-table digest (rows, sum of row hashes: 16 bytes each);
    the largest group (ties: the one holding the first region of the spec) is the consensus,
    and each region outside it is compared with a consensus region by key, descending the
    digest tree over the profiles' keyed digests. One result per region."""
    from pipelines.control.results import CheckResult

    spec = ctx.spec
    table = spec.table(check.table)
    check_id = f"parity.{table.name}"
    results: list[CheckResult] = []
    digests: dict[str, Any] = {}
    for region in spec.regions:
        p = ctx.profile(region, table)
        base0: dict[str, Any] = dict(stage="reconcile", check_id=check_id, check_type="parity", region=region,
                                     table=table.name, policy=check.policy)
        if p is None:
            results.append(CheckResult(**base0, success=False, observed="missing", threshold="present",
                                       message=f"{region} holds no {table.path} in this generation"))
            continue
        if p.digest is None:
            results.append(CheckResult(**base0, success=False, observed="no digest", threshold="digest",
                                       table_version=p.version,
                                       message=f"{region}/{table.path}: no digest in its profile at version {p.version}"))
            continue
        digests[region] = p
    if not digests:
        return results
    groups: dict[tuple[int, int, tuple[str, ...]], list[str]] = {}
    for region, p in digests.items():
        d = p.digest
        groups.setdefault((int(d["rows"]), int(d["total"]), tuple(sorted(d["columns"]))), []).append(region)
    consensus = max(groups.values(), key=lambda rs: (len(rs), -spec.regions.index(rs[0])))
    ref = consensus[0]
    ref_cols = sorted(digests[ref].digest["columns"])
    for region, p in digests.items():
        d = p.digest
        base: dict[str, Any] = dict(stage="reconcile", check_id=check_id, check_type="parity", region=region,
                                    table=table.name, policy=check.policy, table_version=p.version)
        if region in consensus:
            results.append(CheckResult(
                **base, success=True, observed=0, threshold=0, unexpected_count=0, element_count=int(d["rows"]),
                message=f"in sync with {len(consensus) - 1} other region(s) (whole-table digest)",
                details={"reference": ref, "bytes_moved": 16, "rows": int(d["rows"]), "residency": check.residency}))
            continue
        if sorted(d["columns"]) != ref_cols:
            results.append(CheckResult(
                **base, success=False, observed=sorted(d["columns"]), threshold=ref_cols,
                message=f"{region} has columns {sorted(d['columns'])}, consensus ({ref}) has {ref_cols}"))
            continue
        a = _side(ctx, ref, table, digests[ref], check.keys)
        b = _side(ctx, region, table, p, check.keys)
        b.columns = list(a.columns)
        report = compare(a, b, buckets=check.buckets, strict=check.residency == "strict",
                         what=f"{table.path} ({check_id})")
        if table.personal:  # a personal key or value is shown only as its keyed hash
            report = _masked(report, Masker(spec, ctx.root), table.personal)
        s = report.summary(limit=1000)
        differing = report.differing
        cols = ", ".join(f"{c} ({n})" for c, n in sorted(report.changed_columns.items()))
        parts = []
        if report.changed.height:
            parts.append(f"{report.changed.height} key(s) differ in {cols}")
        if report.only_in_b.height:
            parts.append(f"{report.only_in_b.height} key(s) only in {region}")
        if report.only_in_a.height:
            parts.append(f"{report.only_in_a.height} key(s) missing from {region}")
        sample = s["samples"]["changed"][:10] or s["samples"]["only_in_b"][:10] or s["samples"]["only_in_a"][:10]
        results.append(CheckResult(
            **base, success=False, observed=differing, threshold=0, unexpected_count=differing,
            element_count=int(d["rows"]),
            message=f"{region} differs from {ref} (consensus of {len(consensus)}): " + "; ".join(parts)
            + f"; keys {sample}",
            details={
                "reference": ref, "keys": check.keys, "residency": check.residency,
                "changed_keys": s["samples"]["changed"], "only_in_region": s["samples"]["only_in_b"],
                "missing_in_region": s["samples"]["only_in_a"], "changed_columns": report.changed_columns,
                "counts": {"changed": report.changed.height, "only_in_region": report.only_in_b.height,
                           "missing_in_region": report.only_in_a.height},
                "samples": report.samples, "bytes_moved": report.traffic.total, "rounds": report.traffic.rounds,
                "buckets_compared": report.buckets_compared, "rows": int(d["rows"]),
                "reference_rows": report.rows_a, "from_evidence": isinstance(b, EvidenceSide),
            }))
    return results
