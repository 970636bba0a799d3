"""Cross-region reconciliation: the checks the gate judges a generation by, from evidence.

``run_checks(spec, interval, root=None, run_id="")`` is the runner's entry point. It reads
the interval's evidence (:class:`Context`): the generation is the newest version of every
region's table that a region published a profile about, and every check reads those
profiles and the validation results bound to the same versions - never a region's table.
It returns one list of :class:`~pipelines.control.results.CheckResult` (the runner records them):

* ``generation.snapshot`` - the generation judged (its members are in ``details``);
* ``generation.complete`` - every region published a profile of every table;
* ``evidence.profile`` - each profile was computed under the current plan (spec);
* ``evidence.suite`` - every validated table's suite exists and loads (a missing suite blocks,
  naming the file: never "nothing to check");
* ``evidence.validation`` - each validated (region, table) holds a complete validation batch at
  exactly the generation's version under the current suite ("not validated at version V" blocks);
* ``lineage`` (:mod:`.lineage`) - each derived version was computed from the input versions of
  the same generation (and from the lookback partitions as their evidence stands);
* parity (:mod:`.parity`), control totals (:mod:`.totals`), drift (:mod:`.drift`),
  freshness (:mod:`.freshness`), schema (:mod:`.schema`), validation rollup (:mod:`.rollup`).

A check that cannot run - it fails to import, its input is missing, it raises - yields a
failing, blocking result with its reason rather than no result, so the gate never certifies
blind.

``diff`` (:mod:`.diff`) is the parity engine as a standalone tool for any two tables.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from typing import Any

from pipelines.control.results import CheckResult
from pipelines.generation import generation_of
from pipelines.reconcile.context import Context
from pipelines.spec import Interval, PipelineSpec

__all__ = ["Context", "generation_of", "run_checks"]

log = logging.getLogger(__name__)


def _guard(check_id: str, check_type: str, policy: str, module: str, fn_name: str,
           call: Callable[[Callable[..., list[CheckResult]]], list[CheckResult]]) -> list[CheckResult]:
    """Import ``module.fn_name`` and run it; any failure is one blocking result with its reason."""
    try:
        fn = getattr(importlib.import_module(module), fn_name)
        results = call(fn)
    except Exception as exc:  # fail closed: a check that cannot run blocks, whatever the reason
        log.warning("check %s could not run (%s): blocking", check_id, type(exc).__name__)
        return [CheckResult(stage="reconcile", check_id=check_id, check_type=check_type, region="*", table="*",
                            policy="block", success=False,
                            message=f"check could not run: {type(exc).__name__}: {exc}",
                            details={"error": type(exc).__name__, "configured_policy": policy})]
    _log_outcome(check_id, results)
    return results


def _log_outcome(check_id: str, results: list[CheckResult]) -> None:
    """One INFO line per check: how many results passed and failed, and where it failed
    (regions and policies; never a message, which may quote key values)."""
    failed = [r for r in results if not r.success]
    where = sorted({f"{r.region}/{r.policy}" for r in failed})
    log.info("check %s: %d result(s), %d passed, %d failed%s", check_id, len(results), len(results) - len(failed),
             len(failed), f" ({', '.join(where)})" if where else "")


def completeness(ctx: Context) -> list[CheckResult]:
    """Is the evidence complete and current for exactly the generation's versions?

    Every region published a profile of every table, under the current plan; every validated
    table's suite exists and loads; and each (region, table) holds a complete validation
    batch at exactly the generation's version under that suite (see
    :class:`~pipelines.reconcile.context.Batches`)."""
    spec = ctx.spec
    gen = ctx.generation
    out: list[CheckResult] = []
    missing = [f"{r}/{t.path}" for r in spec.regions for t in spec.tables
               if t.layer != "quarantine" and gen.version(r, t.layer, t.name) is None]
    out.append(CheckResult(
        stage="reconcile", check_id="generation.complete", check_type="generation", region="*", table="*",
        policy="block", success=not missing, observed=missing, threshold=[],
        message=(f"no profile of {ctx.interval.key} for: {', '.join(missing)} (not written, or its evidence was never "
                 "published)") if missing else "every region published a profile of every table"))
    for name, suite in ctx.suites.items():
        if isinstance(suite, Exception):
            out.append(CheckResult(
                stage="reconcile", check_id=f"evidence.suite.{name}", check_type="evidence", region="*",
                table=spec.table(name).path, policy="block", success=False, observed=None,
                threshold=str(suite.context.get("path") or ""), message=str(suite)))
    for region in spec.regions:
        for t in spec.tables:
            if t.layer == "quarantine":
                continue
            p = ctx.profile(region, t)
            if p is None:
                continue
            base: dict[str, Any] = dict(stage="reconcile", region=region, table=t.path, policy="block",
                                        table_version=p.version)
            plan = ctx.current_plan(t)
            if p.plan_hash != plan:
                out.append(CheckResult(
                    **base, check_id=f"evidence.profile.{t.name}", check_type="evidence", success=False,
                    observed=p.plan_hash, threshold=plan,
                    message=f"{region}/{t.path}: stale profile at version {p.version} (computed under plan "
                            f"{p.plan_hash}, the spec now asks {plan}); re-run the region"))
            if t.name not in ctx.suites:
                continue
            b = ctx.batches(region, t)
            if b.suite is None:
                continue  # the suite itself is missing or broken: blocked above, naming the file
            sha, n = b.suite.sha, len(b.suite.expectations)
            if b.complete:
                ok, msg = True, (f"{region}/{t.path}: validated at version {p.version} (suite {sha}, {n} expectations, "
                                 f"{len(b.complete)} complete batch(es))")
            elif b.problems:
                ok, msg = False, (f"{region}/{t.path}: not validated at version {p.version} under the current suite "
                                  f"{sha}: {'; '.join(b.problems)}; run `lockstep validate` again")
            elif b.other_suites:
                ok, msg = False, (f"{region}/{t.path}: not validated at version {p.version} under the current suite "
                                  f"{sha} (validated under {sorted(b.other_suites)}); run `lockstep validate` again")
            else:
                ok, msg = False, f"{region}/{t.path}: not validated at version {p.version}"
            out.append(CheckResult(**base, check_id=f"evidence.validation.{t.name}", check_type="evidence",
                                   success=ok, observed=p.version, threshold=sha, message=msg,
                                   details={"suite_sha": sha, "batches": [rows[0].batch for rows in b.complete]}))
    return out


def bindings(ctx: Context) -> dict[str, Any]:
    """What a certification of this generation is bound to: each validated table's suite by
    content hash, each derived version's input versions, and every member's data files by
    content hash (the profile's ``files``), as its evidence states them."""
    suites = {name: s.sha for name, s in ctx.suites.items() if not isinstance(s, Exception)}
    inputs = {member: {k: v.get("version") for k, v in p.inputs.items()}
              for member, p in sorted(ctx.profiles.items()) if p.inputs}
    files = {member: dict(p.files) for member, p in sorted(ctx.profiles.items())}
    return {"suites": suites, "inputs": inputs, "files": files}


def run_checks(spec: PipelineSpec, interval: Interval, *, root: str | None = None, run_id: str = "",
               undelivered: dict[str, str] | None = None) -> list[CheckResult]:
    """Run every reconciliation check of ``spec`` on ``interval``'s generation, from evidence.
    ``undelivered``: region -> why it did not deliver in this run, as the orchestrator saw it."""
    ctx = Context.build(spec, interval, root=root, run_id=run_id, undelivered=undelivered)
    rec = spec.reconcile
    gen = ctx.generation
    results = [CheckResult(
        stage="reconcile", check_id="generation.snapshot", check_type="generation", region="*", table="*",
        policy="warn", success=True, observed=gen.id, message=f"generation {gen.id} ({len(gen.members)} tables)",
        details={"generation": gen.members, "interval": gen.interval},
    )]
    results += _guard("delivery", "delivery", "block", "pipelines.reconcile.delivery", "check_delivery",
                      lambda f: f(ctx))
    results += _guard("evidence", "evidence", "block", "pipelines.reconcile", "completeness", lambda f: f(ctx))
    results += _guard("lineage", "lineage", "block", "pipelines.reconcile.lineage", "check_lineage", lambda f: f(ctx))
    try:
        results[0].details["bindings"] = bindings(ctx)
    except Exception as exc:  # fail closed: no bindings, no certification (the gate says so)
        results.append(CheckResult(stage="reconcile", check_id="generation.bound", check_type="generation",
                                   region="*", table="*", policy="block", success=False,
                                   message=f"the generation's bindings could not be assembled: {type(exc).__name__}: {exc}"))
    pkg = "pipelines.reconcile"
    for check in rec.parity:
        results += _guard(f"parity.{check.table}", "parity", check.policy, f"{pkg}.parity", "check_parity",
                          lambda f, c=check: f(ctx, c))  # type: ignore[misc]
    if rec.control_totals is not None:
        ct = rec.control_totals
        results += _guard("totals", "control_totals", ct.policy, f"{pkg}.totals", "check_totals", lambda f: f(ctx, ct))
    for dcheck in rec.drift:
        results += _guard(f"drift.{dcheck.table}", "drift", dcheck.policy, f"{pkg}.drift", "check_drift",
                          lambda f, c=dcheck: f(ctx, c))  # type: ignore[misc]
    if rec.freshness is not None:
        fr = rec.freshness
        results += _guard(f"freshness.{fr.table}", "freshness", fr.policy, f"{pkg}.freshness", "check_freshness",
                          lambda f: f(ctx, fr))
    if rec.schema_parity.enabled:
        sc = rec.schema_parity
        results += _guard("schema", "schema", sc.policy, f"{pkg}.schema", "check_schema", lambda f: f(ctx, sc))
    results += _guard("rollup", "rollup", "block", f"{pkg}.rollup", "check_rollup", lambda f: f(ctx))
    results[0].details["evidence_bytes"] = ctx.bytes_read
    # each region's index not used (its tables read instead), with why: stale, missing, corrupt...
    results[0].details["index_misses"] = dict(ctx.index_misses)
    return results


def validation_verdict(spec: PipelineSpec, interval: Interval, *, root: str | None = None,
                       regions: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Each region's validation as the gate judges it, from the same evidence: the validation
    results of the generation's versions (:func:`~pipelines.reconcile.rollup.current_validation`),
    whether each validated table holds a complete batch at its version (``evidence.validation``),
    the rollup's restated failures and quarantine caps (the share quarantine moved aside, from the
    profile of the version it produced). Region -> ``{"checks", "failed", "quarantined",
    "blocking" (check ids), "messages" (each blocking result's message), "versions"}``."""
    from pipelines.reconcile.rollup import check_rollup, current_validation

    ctx = Context.build(spec, interval, root=root)
    judged = [r for r in completeness(ctx) if r.check_id.startswith("evidence.")] + check_rollup(ctx)
    out: dict[str, dict[str, Any]] = {}
    for region in regions or spec.regions:
        mine = [r for r in judged if r.region in (region, "*") and r.check_id != "rollup.validation"]
        current = [r for r in current_validation(ctx, region) if r.check_type != "suite_run"]
        failed = [r for r in mine if not r.success]
        blocking = [r for r in failed if r.blocking]
        out[region] = {
            "checks": len({(r.table, r.check_id) for r in current}),
            "failed": len({(r.table, r.check_id) for r in failed}),
            "quarantined": sum(int(r.unexpected_count or 0) for r in mine if r.check_id.startswith("rollup.quarantine.")),
            "blocking": sorted({r.check_id for r in blocking}),
            "messages": [r.message for r in blocking],
            "versions": {t.path: ctx.version(region, t) for t in spec.tables if t.layer != "quarantine"},
        }
    return out
