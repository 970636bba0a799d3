"""The release log: which model version is in force, for every region at once, from which interval.

A release is one row of the ordered control table ``releases`` (one commit, covering every
region): release id, model name and version (resolved once, never an alias), the feature
version, plan hash and suites it was trained under, the generations it was trained on,
``effective_from`` (an interval boundary), who, why and its kind (``promote`` or
``rollback``). :func:`release_in_force` folds the log in commit order (``log_version``),
never by a clock: for an interval, the newest-committed release effective from it or before.
MLflow's ``champion`` alias is set after the commit, as a mirror for other MLflow users.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from pipelines.certify import active_certifications
from pipelines.control.tables import RELEASES_TABLE
from pipelines.errors import CertificationError, SpecError
from pipelines.models.registry import CHAMPION, load_model, models_spec, use_registry
from pipelines.models.train import TAG, feature_version_in_force, features_frame, version_tags
from pipelines.spec import Interval, PipelineSpec
from pipelines.spec.settings import settings


@dataclass(frozen=True)
class Release:
    """One row of the release log."""

    release_id: str
    pipeline: str
    model_name: str
    model_version: str
    feature_version: str
    plan_hash: str
    suites: dict[str, Any]
    generations: dict[str, str]
    effective_from: str
    effective_start: datetime
    who: str
    why: str
    kind: str  # promote | rollback
    target: str  # rollback: the release re-instated
    released_at: datetime
    log_version: int
    #: the approvals the release took effect with (request, requester, approvers, digest), if any
    approval: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in asdict(self).items()}


def _uri(spec: PipelineSpec, root: str | None) -> str:
    return spec.lockstep_uri(RELEASES_TABLE.name, root)


def releases(spec: PipelineSpec, *, root: str | None = None) -> list[Release]:
    """Every release, in commit order."""
    opts = spec.control_options()
    frame = RELEASES_TABLE.scan(RELEASES_TABLE.open(_uri(spec, root), opts), opts).collect().sort("log_version")
    return [Release(**dict(row, suites=json.loads(row["suites"] or "{}"),
                           generations=json.loads(row["generations"] or "{}"),
                           approval=json.loads(row.get("approval") or "null")))
            for row in frame.iter_rows(named=True)]


def release_in_force(spec: PipelineSpec, interval: str | Interval, *, root: str | None = None,
                     log: list[Release] | None = None) -> Release | None:
    """The release in force for ``interval``: folded in commit order, the last release whose
    ``effective_from`` is at or before the interval's start."""
    start = (interval if isinstance(interval, Interval) else spec.interval_at(interval)).start
    in_force = None
    for r in log if log is not None else releases(spec, root=root):
        if r.effective_start <= start:
            in_force = r
    return in_force


def find_release(spec: PipelineSpec, release_id: str, *, root: str | None = None,
                 log: list[Release] | None = None) -> Release:
    """The release named ``release_id``, or a :class:`SpecError`."""
    found = [r for r in (log if log is not None else releases(spec, root=root)) if r.release_id == release_id]
    if not found:
        raise SpecError(f"{spec.name}: no release {release_id!r}")
    return found[0]


def _boundary(spec: PipelineSpec, effective_from: str) -> Interval:
    iv = spec.interval_at(effective_from)
    if iv.key != effective_from:
        raise SpecError(f"{spec.name}: effective_from {effective_from!r} is not an interval boundary (next: {iv.key!r}?)")
    return iv


def _refusals(spec: PipelineSpec, tags: dict[str, str], root: str | None) -> list[str]:
    """Why a model version may not be released: every reason."""
    reasons = []
    if tags.get(f"{TAG}pipeline") != spec.name:
        reasons.append(f"it was not trained by Lockstep on {spec.name}'s certified data")
        return reasons
    in_force = feature_version_in_force(spec)
    if tags.get(f"{TAG}feature_version") != in_force:
        reasons.append(f"it was trained on feature version {tags.get(f'{TAG}feature_version')!r}; "
                       f"the feature version in force is {in_force!r}")
    active = active_certifications(spec, root=root)
    for key, gen in sorted(json.loads(tags.get(f"{TAG}generations") or "{}").items()):
        if key not in active or active[key].generation_id != gen:
            reasons.append(f"it was trained on generation {gen} of {key}, which is no longer certified")
    return reasons


def _check_order(spec: PipelineSpec, effective: Interval, why: str, root: str | None) -> None:
    if not why.strip():
        raise SpecError(f"{spec.name}: a release needs a reason (why)")
    log = releases(spec, root=root)
    if log and effective.start < max(r.effective_start for r in log):
        newest = max(log, key=lambda r: r.effective_start)
        raise SpecError(f"{spec.name}: effective_from {effective.key} is before release {newest.release_id}'s "
                        f"({newest.effective_from}); a release never changes the past")


def _append(spec: PipelineSpec, version: str, tags: dict[str, str], effective: Interval, why: str, kind: str,
            target: str, root: str | None, who: str | None = None, approval: dict[str, Any] | None = None) -> Release:
    _check_order(spec, effective, why, root)
    ms = models_spec(spec)
    who, now = who or settings().who(), datetime.now(UTC)

    def row(v: int) -> dict[str, Any]:
        return {
            "release_id": f"{ms.name}-r{v}", "pipeline": spec.name, "model_name": ms.name, "model_version": version,
            "feature_version": tags.get(f"{TAG}feature_version", ""), "plan_hash": tags.get(f"{TAG}plan_hash", ""),
            "suites": tags.get(f"{TAG}suites", "{}"), "generations": tags.get(f"{TAG}generations", "{}"),
            "effective_from": effective.key, "effective_start": effective.start, "who": who, "why": why,
            "kind": kind, "target": target, "released_at": now, "log_version": v,
            "approval": json.dumps(approval, sort_keys=True) if approval else None,
        }

    v = RELEASES_TABLE.append_in_order(_uri(spec, root), row, spec.control_options())
    # the mirror, after the commit: MLflow users see the newest release; Lockstep never reads it
    use_registry(spec, root).set_registered_model_alias(ms.name, CHAMPION, version)
    return find_release(spec, f"{ms.name}-r{v}", root=root)


def check_promotion(spec: PipelineSpec, version: str | int, *, effective_from: str, why: str,
                    root: str | None = None) -> dict[str, str]:
    """What :func:`promote` checks, without releasing: the version's tags, or the refusal."""
    version = str(version)
    tags = version_tags(spec, version, root)
    reasons = _refusals(spec, tags, root)
    if reasons:
        raise CertificationError(f"{spec.name}: promotion of {models_spec(spec).name} version {version} refused: "
                                 + "; ".join(reasons), retryable=False)
    _check_order(spec, _boundary(spec, effective_from), why, root)
    return tags


def promote(spec: PipelineSpec, version: str | int, *, effective_from: str, why: str, root: str | None = None,
            who: str | None = None, approval: dict[str, Any] | None = None) -> Release:
    """Release model ``version`` in every region from the interval ``effective_from`` on.
    Refused (with every reason) unless it was trained on generations still certified and on
    the feature version in force. ``approval``: the approvals it took effect with."""
    tags = check_promotion(spec, version, effective_from=effective_from, why=why, root=root)
    return _append(spec, str(version), tags, _boundary(spec, effective_from), why, "promote", "", root, who, approval)


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


def check_rollback(spec: PipelineSpec, *, to: str, effective_from: str, why: str, root: str | None = None
                   ) -> tuple[Release, dict[str, str]]:
    """What :func:`rollback` checks, without releasing: the release re-instated and its
    model's tags, or the refusal."""
    target = find_release(spec, to, root=root)
    load_check(spec, target.model_version, root)
    tags = version_tags(spec, target.model_version, root)
    in_force = feature_version_in_force(spec)
    if target.feature_version != in_force:
        raise CertificationError(f"{spec.name}: rollback to {to} refused: its model reads feature version "
                                 f"{target.feature_version!r}; the version in force is {in_force!r}", retryable=False)
    _check_order(spec, _boundary(spec, effective_from), why, root)
    return target, tags


def rollback(spec: PipelineSpec, *, to: str, effective_from: str, why: str, root: str | None = None,
             who: str | None = None, approval: dict[str, Any] | None = None) -> Release:
    """Make release ``to``'s model in force again from ``effective_from`` on, after checking it
    loads and scores: appends a ``rollback`` release naming ``to`` (who, why, from, to)."""
    target, tags = check_rollback(spec, to=to, effective_from=effective_from, why=why, root=root)
    return _append(spec, target.model_version, tags, _boundary(spec, effective_from), why, "rollback", to, root,
                   who, approval)
