"""Cross-region reconciliation: the checks the gate judges a generation by.

``run_checks(spec, interval, root=None, run_id="")`` is the runner's entry point. It
captures the generation first (the Delta version of every region's tables), so every check
reads exactly the versions the gate will certify, and returns one list of
:class:`~pipelines.checks.CheckResult` (the runner records them):

* ``generation.snapshot`` - the generation judged (its members are in ``details``);
* ``generation.complete`` - every region holds every table;
* parity (:mod:`.parity`), control totals (:mod:`.totals`), drift (:mod:`.drift`),
  freshness (:mod:`.freshness`), schema (:mod:`.schema`), validation rollup (:mod:`.rollup`).

A check that cannot run (a missing control file, an unsupported column type) yields a
failing result with its error rather than no result, so the gate never certifies blind.

``diff`` (:mod:`.diff`) is the parity engine as a standalone tool for any two tables.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from pipelines.certify import Generation
from pipelines.checks import CheckResult
from pipelines.errors import LockstepError
from pipelines.reconcile.context import Context
from pipelines.spec import Interval, PipelineSpec

__all__ = ["Context", "generation_of", "run_checks"]


def _guard(check_id: str, check_type: str, policy: str, fn: Callable[[], list[CheckResult]]) -> list[CheckResult]:
    try:
        return fn()
    except LockstepError as exc:
        return [CheckResult(stage="reconcile", check_id=check_id, check_type=check_type, region="*", table="*",
                            policy=policy, success=False, message=f"check could not run: {exc}",
                            details={"error": type(exc).__name__})]


def run_checks(
    spec: PipelineSpec, interval: Interval, *, root: str | None = None, run_id: str = "",
    generation: Generation | None = None,
) -> list[CheckResult]:
    """Run every reconciliation check of ``spec`` on ``interval``'s generation."""
    from pipelines.reconcile.drift import check_drift
    from pipelines.reconcile.freshness import check_freshness
    from pipelines.reconcile.parity import check_parity
    from pipelines.reconcile.rollup import check_rollup
    from pipelines.reconcile.schema import check_schema
    from pipelines.reconcile.totals import check_totals

    ctx = Context.build(spec, interval, root=root, run_id=run_id, generation=generation)
    rec = spec.reconcile
    gen = ctx.generation
    results = [CheckResult(
        stage="reconcile", check_id="generation.snapshot", check_type="generation", region="*", table="*",
        policy="warn", success=True, observed=gen.id, message=f"generation {gen.id} ({len(gen.members)} tables)",
        details={"generation": gen.members, "interval": gen.interval},
    )]
    missing = [f"{r}/{t.path}" for r in spec.regions for t in spec.tables if gen.version(r, t.layer, t.name) is None]
    results.append(CheckResult(
        stage="reconcile", check_id="generation.complete", check_type="generation", region="*", table="*",
        policy="block", success=not missing, observed=missing, threshold=[],
        message=f"tables missing: {missing}" if missing else "every region holds every table"))
    for check in rec.parity:
        results += _guard(f"parity.{check.table}", "parity", check.policy, partial(check_parity, ctx, check))
    if rec.control_totals is not None:
        ct = rec.control_totals
        results += _guard("totals", "control_totals", ct.policy, lambda: check_totals(ctx, ct))
    for dcheck in rec.drift:
        results += _guard(f"drift.{dcheck.table}", "drift", dcheck.policy, partial(check_drift, ctx, dcheck))
    if rec.freshness is not None:
        fr = rec.freshness
        results += _guard(f"freshness.{fr.table}", "freshness", fr.policy, lambda: check_freshness(ctx, fr))
    if rec.schema_parity.enabled:
        sc = rec.schema_parity
        results += _guard("schema", "schema", sc.policy, lambda: check_schema(ctx, sc))
    results += _guard("rollup", "rollup", "block", lambda: check_rollup(ctx))
    return results


def generation_of(results: list[Any]) -> Generation | None:
    """The generation a list of reconcile results judged (from ``generation.snapshot``)."""
    for r in results:
        if r.check_id == "generation.snapshot" and r.details.get("generation") is not None:
            return Generation(r.details.get("interval") or "", {k: int(v) for k, v in r.details["generation"].items()})
    return None
