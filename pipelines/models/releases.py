"""Release decisions: promote a model version through the promotion gate, roll back to an
earlier release; both one commit of the release log (:mod:`pipelines.models.log`), in force
for every region from the same interval on.

:func:`promote` runs the gate (:func:`~pipelines.models.evaluate.evaluate_promotion`: the
evaluation window certified in every region, shadow scores within thresholds, the feature
version and plan in force, the load check). A refusal is appended to the log too (kind
``refused``, with every reason) and raised. An admitted release takes effect at
``effective_from``: by default the next interval no region has scored yet; an explicit one at
or before an interval some region already scored (or is scoring) is refused. Both are checked
against the log at the release's own commit, so a claim committed a moment earlier counts.

:func:`rollback` load-checks the earlier release's model first, then re-instates it from the
next unscored interval, recording who, why, from (the release it replaces) and to.
MLflow's ``champion`` alias is moved after each commit, as a mirror; it is never read back.

Example::

    release = promote(spec, "3", why="retrained on January")
    back = rollback(spec, why="r7 misbehaves")        # to the release before the one in force
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import numpy as np

from pipelines.errors import CertificationError, SpecError
from pipelines.models.evaluate import Evaluation, evaluate_promotion
from pipelines.models.log import (
    Release,
    append_decision,
    find_release,
    newest_release,
    next_unscored,
    read_log,
    release_in_force,
    releases,
    scored_at_or_after,
)
from pipelines.models.registry import CHAMPION, load_model, models_spec, registry
from pipelines.models.train import TAG, feature_version_in_force, features_frame, version_tags
from pipelines.spec import Interval, PipelineSpec
from pipelines.spec.settings import settings

__all__ = ["PromotionRefused", "Release", "check_promotion", "check_rollback", "find_release", "load_check", "promote",
           "release_in_force", "releases", "rollback"]


class PromotionRefused(CertificationError):
    """A promotion the gate refused; ``reasons`` lists every reason, ``release_id`` the refusal's row."""

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message, **context)
        self.reasons: list[dict[str, Any]] = list(context.get("reasons") or [])
        self.release_id: str = str(context.get("release_id") or "")


def _boundary(spec: PipelineSpec, effective_from: str) -> Interval:
    iv = spec.interval_at(effective_from)
    if iv.key != effective_from:
        raise SpecError(f"{spec.name}: effective_from {effective_from!r} is not an interval boundary (next: {iv.key!r}?)")
    return iv


def _effective(spec: PipelineSpec, log: list[Release], requested: Interval | None, fallback: Interval | None
               ) -> tuple[Interval | None, str | None]:
    """When a release decided on ``log`` takes effect: ``requested``, else the next interval
    no region has scored, else ``fallback``; never before the newest release's nor at or
    before a scored interval. Returns (the interval, None) or (None, why not)."""
    newest = newest_release(log)
    if requested is None:
        chosen = next_unscored(spec, log) or fallback
        if newest is not None and (chosen is None or chosen.start < newest.effective_start):
            chosen = spec.interval_at(newest.effective_start)
        if chosen is None:
            return None, "nothing was scored or decided yet: name the interval it takes effect from"
        return chosen, None
    if newest is not None and requested.start < newest.effective_start:
        return None, (f"effective_from {requested.key} is before release {newest.release_id}'s ({newest.effective_from}); "
                      "a release never changes the past")
    scored = scored_at_or_after(spec, log, requested.start)
    if scored:
        return None, (f"effective_from {requested.key} is at or before interval(s) already scored (or being scored): "
                      f"{', '.join(scored[:5])}{' ...' if len(scored) > 5 else ''}; the next unscored interval is "
                      f"{next_unscored(spec, log).key}")  # type: ignore[union-attr]
    return requested, None


def _row(kind: str, spec: PipelineSpec, version: str, tags: dict[str, str], effective: Interval | None, why: str,
         who: str, v: int, **more: Any) -> dict[str, Any]:
    return {
        "release_id": f"{models_spec(spec).name}-r{v}", "model_version": version,
        "feature_version": tags.get(f"{TAG}feature_version", ""), "plan_hash": tags.get(f"{TAG}plan_hash", ""),
        "suites": tags.get(f"{TAG}suites", "{}"), "generations": tags.get(f"{TAG}generations", "{}"),
        "effective_from": effective.key if effective else "", "effective_start": effective.start if effective else None,
        "who": who, "why": why, "kind": kind, "released_at": datetime.now(UTC), **more,
    }


def _mirror(spec: PipelineSpec, release: Release, root: str | None) -> None:
    """MLflow's alias, after Lockstep's commit: other MLflow users see the newest release."""
    with registry(spec, root) as client:
        client.set_registered_model_alias(release.model_name, CHAMPION, release.model_version)


def _refuse(spec: PipelineSpec, version: str, tags: dict[str, str], requested: Interval | None, why: str, who: str,
            reasons: list[dict[str, Any]], root: str | None) -> PromotionRefused:
    """Record a refused promotion (audited like a blocked gate) and return the error to raise."""
    row, _ = append_decision(spec, lambda log, v: _row("refused", spec, version, tags, requested, why, who, v,
                                                       reasons=json.dumps(reasons, default=str)), root=root)
    shown = "; ".join(r["message"] for r in reasons[:8]) + (f"; and {len(reasons) - 8} more" if len(reasons) > 8 else "")
    return PromotionRefused(f"{spec.name}: promotion of {models_spec(spec).name} version {version} refused "
                            f"({len(reasons)} reason(s), recorded as {row.release_id if row else '?'}): {shown}",
                            reasons=reasons, release_id=row.release_id if row else "", retryable=False)


def check_promotion(spec: PipelineSpec, version: str | int, *, why: str, effective_from: str | None = None,
                    until: str | None = None, root: str | None = None, now: datetime | None = None
                    ) -> dict[str, str]:
    """What :func:`promote` checks, without recording anything (a request for approval is
    bound to it): the version's tags, or a :class:`PromotionRefused` with every reason."""
    if not why.strip():
        raise SpecError(f"{spec.name}: a release needs a reason (why)")
    version = str(version)
    requested = _boundary(spec, effective_from) if effective_from else None
    evaluation = evaluate_promotion(spec, version, until=until, root=root, now=now)
    reasons = list(evaluation.reasons)
    if not reasons and requested is not None:
        _, problem = _effective(spec, read_log(spec, root=root), requested, None)
        if problem:
            reasons.append({"check_id": "promotion.effective_from", "region": "*", "interval": requested.key,
                            "message": problem})
    if reasons:
        raise PromotionRefused(f"{spec.name}: promotion of {models_spec(spec).name} version {version} refused: "
                               + "; ".join(r["message"] for r in reasons[:8]), reasons=reasons, retryable=False)
    return evaluation.tags


def promote(spec: PipelineSpec, version: str | int, *, why: str, effective_from: str | None = None,
            until: str | None = None, root: str | None = None, who: str | None = None,
            now: datetime | None = None, approval: dict[str, Any] | None = None) -> Release:
    """Release model ``version`` in every region, through the promotion gate over the
    evaluation window ending with ``until`` (default: the newest decided interval), from
    ``effective_from`` on (default: the next interval no region has scored). Refused, and
    the refusal recorded, with every reason (:class:`PromotionRefused`). ``approval``: the
    approvals it takes effect with (request, requester, approvers, digest), recorded with it."""
    if not why.strip():
        raise SpecError(f"{spec.name}: a release needs a reason (why)")
    version, who = str(version), who or settings().who()
    requested = _boundary(spec, effective_from) if effective_from else None
    approved = {"approval": json.dumps(approval, sort_keys=True)} if approval else {}
    evaluation = evaluate_promotion(spec, version, until=until, root=root, now=now)
    if evaluation.reasons:
        raise _refuse(spec, version, evaluation.tags, requested, why, who, evaluation.reasons, root)
    after_window = spec.interval_at(spec.interval_at(evaluation.window[-1]).start + spec.interval_length)
    late: list[str] = []

    def build(log: list[Release], v: int) -> dict[str, Any]:
        effective, problem = _effective(spec, log, requested, after_window)
        late[:] = [problem] if problem else []
        if problem:  # decided on the log at this commit: the refusal is what gets committed
            reason = {"check_id": "promotion.effective_from", "region": "*", "interval": requested.key
                      if requested else "*", "message": problem}
            return _row("refused", spec, version, evaluation.tags, requested, why, who, v,
                        reasons=json.dumps([reason]))
        return _row("promote", spec, version, evaluation.tags, effective, why, who, v,
                    replaces=_replaced(log), evaluated=json.dumps(_evaluated(evaluation)), **approved)

    release, _ = append_decision(spec, build, root=root)
    assert release is not None
    if late:
        raise PromotionRefused(f"{spec.name}: promotion of {models_spec(spec).name} version {version} refused "
                               f"(recorded as {release.release_id}): {late[0]}", reasons=release.reasons,
                               release_id=release.release_id, retryable=False)
    _mirror(spec, release, root)
    return release


def _replaced(log: list[Release]) -> str:
    """The release in force a new one replaces ('' for the first)."""
    newest = newest_release(log)
    return newest.release_id if newest else ""


def _evaluated(ev: Evaluation) -> dict[str, Any]:
    return {"window": ev.window, "baseline": ev.baseline, "regions": ev.regions}


def load_check(spec: PipelineSpec, version: str, root: str | None = None) -> None:
    """Load model ``version`` from the registry and score a fixed sample twice: it must load,
    give one finite probability per row, and the same ones both times."""
    import polars as pl

    model = load_model(spec, version, root)
    ms = models_spec(spec)
    sample = features_frame(pl.DataFrame({c: [0.0, 1.0, 5.0] for c in ms.features}), ms.features)
    first, second = model.predict_proba(sample)[:, 1], model.predict_proba(sample)[:, 1]
    if first.shape != (3,) or not np.isfinite(first).all() or not np.array_equal(first, second):
        raise CertificationError(f"{spec.name}: model {ms.name} version {version} failed its load check", retryable=False)


def check_rollback(spec: PipelineSpec, *, why: str, to: str | None = None, effective_from: str | None = None,
                   root: str | None = None) -> tuple[Release, dict[str, str]]:
    """What :func:`rollback` checks, without recording anything (a request for approval is
    bound to it): the release re-instated and its model version's tags, or the refusal."""
    if not why.strip():
        raise SpecError(f"{spec.name}: a rollback needs a reason (why)")
    log = read_log(spec, root=root)
    target = _rollback_target(spec, log, to, root)
    requested = _boundary(spec, effective_from) if effective_from else None
    effective, problem = _effective(spec, log, requested, None)
    if problem or effective is None:
        raise CertificationError(f"{spec.name}: rollback to {target.release_id} refused: {problem}", retryable=False)
    return target, version_tags(spec, target.model_version, root)


def _rollback_target(spec: PipelineSpec, log: list[Release], to: str | None, root: str | None) -> Release:
    """The release a rollback re-instates (default: the one before the release in force),
    after its model's load check and the feature version check."""
    current = newest_release(log)
    if current is None:
        raise CertificationError(f"{spec.name}: no release in force: nothing to roll back", retryable=False)
    if to is None:
        earlier = [r for r in releases(spec, log=log) if r.model_version != current.model_version]
        if not earlier:
            raise CertificationError(f"{spec.name}: no release before {current.release_id} to roll back to",
                                     retryable=False)
        to = earlier[-1].release_id
    target = find_release(spec, to, log=log)
    load_check(spec, target.model_version, root)
    in_force = feature_version_in_force(spec)
    if target.feature_version != in_force:
        raise CertificationError(f"{spec.name}: rollback to {to} refused: its model reads feature version "
                                 f"{target.feature_version!r}; the version in force is {in_force!r}", retryable=False)
    return target


def rollback(spec: PipelineSpec, *, why: str, to: str | None = None, effective_from: str | None = None,
             root: str | None = None, who: str | None = None, approval: dict[str, Any] | None = None) -> Release:
    """Make release ``to`` (default: the release before the one in force) in force again, from
    ``effective_from`` (default: the next interval no region has scored) on, after checking
    its model loads and scores: appends a ``rollback`` naming ``to`` and the release it replaces
    (``approval``: the approvals it takes effect with, recorded with it)."""
    if not why.strip():
        raise SpecError(f"{spec.name}: a rollback needs a reason (why)")
    log = read_log(spec, root=root)
    target = _rollback_target(spec, log, to, root)
    to = target.release_id
    tags = version_tags(spec, target.model_version, root)
    approved = {"approval": json.dumps(approval, sort_keys=True)} if approval else {}
    requested = _boundary(spec, effective_from) if effective_from else None
    who = who or settings().who()

    def build(log: list[Release], v: int) -> dict[str, Any]:
        effective, problem = _effective(spec, log, requested, None)
        if problem or effective is None:
            raise CertificationError(f"{spec.name}: rollback to {to} refused: {problem}", retryable=False)
        return _row("rollback", spec, target.model_version, tags, effective, why, who, v, target=to,
                    replaces=_replaced(log), **approved)

    release, _ = append_decision(spec, build, root=root)
    assert release is not None
    _mirror(spec, release, root)
    return release
