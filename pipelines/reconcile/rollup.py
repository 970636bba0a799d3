"""Validation rollup: validation's ``block`` results and quarantine ratios, per region.

Validation records its results bound to the table version it judged (and the suite's
hash). Only results about exactly the generation's version, from complete validation batches
of that version under the current suite, count (a failure in any of them): a failed ``block`` expectation there blocks the
region. So does a table whose quarantined share of the interval's rows exceeds the spec's
``validation.quarantine_cap``: ``quarantined / (kept + quarantined)``, from the profile of
the version quarantine produced. Every failed result that counts is re-stated as a
reconciliation result (same check id, policy and message, with its version), so the gate's
reasons and ``explain`` show exactly the validation the decision rests on. (A version with
no validation at all is blocked by the ``evidence.validation`` check.)
"""

from __future__ import annotations

from pipelines.control.results import CheckResult
from pipelines.reconcile.context import Context


def current_validation(ctx: Context, region: str) -> list[CheckResult]:
    """The region's validation results about the generation's versions: per table, every
    result of the newest validation batch at exactly that version."""
    out: list[CheckResult] = []
    for t in ctx.spec.tables:
        if t.layer == "quarantine" or t.name not in ctx.suites:
            continue
        out += ctx.batches(region, t).results  # every complete batch under the current suite
    for t in ctx.spec.tables_in("features"):  # the transform's lookback coverage, per version written
        p = ctx.profile(region, t)
        cov = [v for v in ctx.validation if v.region == region and v.table == t.path
               and v.check_type == "lookback_coverage" and p is not None and v.table_version == p.version]
        newest: dict[str, CheckResult] = {}
        for v in cov:
            newest[v.check_id] = v
        out += newest.values()
    return out


def check_rollup(ctx: Context) -> list[CheckResult]:
    spec = ctx.spec
    results: list[CheckResult] = []
    cap = spec.validation.quarantine_cap
    for region in spec.regions:
        current = current_validation(ctx, region)
        blocking = list({(r.table, r.check_id): r for r in current if r.blocking}.values())
        seen: set[tuple[str, str]] = set()
        for r in current:  # each failed result about the generation's versions, re-stated for the gate
            if r.success or (r.table, r.check_id) in seen:
                continue
            seen.add((r.table, r.check_id))
            results.append(CheckResult(
                stage="reconcile", check_id=r.check_id, check_type=r.check_type, region=region, table=r.table,
                policy=r.policy, success=False, observed=r.observed, threshold=r.threshold,
                unexpected_count=r.unexpected_count, element_count=r.element_count,
                message=f"{r.message} (validated at version {r.table_version})".lstrip(), details=r.details,
                table_version=r.table_version, suite_sha=r.suite_sha, batch=r.batch,
            ))
        results.append(CheckResult(
            stage="reconcile", check_id="rollup.validation", check_type="rollup", region=region, table="*",
            policy="block", success=not blocking, observed=len(blocking), threshold=0,
            message=(f"{region}: {len(blocking)} blocking validation result(s): "
                     + ", ".join(sorted({f'{r.table}@v{r.table_version}:{r.check_id}' for r in blocking}))
                     + f" (first: {blocking[0].message})") if blocking
            else f"{region}: no blocking validation result",
            details={"checks": [{"table": r.table, "check_id": r.check_id, "message": r.message,
                                 "version": r.table_version} for r in blocking]},
        ))
        for table in spec.tables_in("raw", "features"):
            q = ctx.quarantined(region, table)
            p = ctx.profile(region, table)
            if q is None or p is None or not q.get("rows"):
                continue
            moved, kept = int(q["rows"]), p.rows
            ratio = moved / max(1, moved + kept)
            results.append(CheckResult(
                stage="reconcile", check_id=f"rollup.quarantine.{table.name}", check_type="rollup", region=region,
                table=table.name, policy="block", success=ratio <= cap, observed=round(ratio, 6), threshold=cap,
                unexpected_count=moved, element_count=moved + kept, table_version=p.version,
                message=f"{region}/{table.path}: {moved:,} of {moved + kept:,} rows quarantined ({ratio:.2%}, cap {cap:.2%})",
            ))
    return results
