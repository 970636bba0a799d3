"""The model's flow, step by step, as the release DAG, the scoring DAG and the demo run it.

A release goes: plan (which certified interval the candidate is evaluated on, which window
it is trained on, from which interval it would be in force), train, shadow-score in every
region, evaluate, promote. Scoring goes: which certified interval, is a release in force for
it (else a refusal that says so), then one region at a time through
:func:`pipelines.models.score`. Every step takes and returns small references (interval
keys, model versions, release ids, counts and metrics), never frames, so an Airflow task is
one call here and the same calls run in-process (``lockstep demo``, tests)::

    plan = plan_release(spec)                                   # the newest certified interval
    cand = train_candidate(spec, plan)
    shadows = [shadow_score(spec, cand["version"], plan.evaluate_on, r) for r in spec.regions]
    evaluate(spec, cand["version"], shadows)                    # records them, then the gate
    release(spec, cand["version"], plan, why="weekly retrain")
    chosen = scoring_interval(spec, "2026-01-06", claim=True)   # the one release, claimed once
    score_region(spec, "2026-01-06", "eu-west", release_id=chosen["release_id"])

Steps a region's worker runs (``shadow_score``, ``score_region`` with ``release_id``) only
read the control plane: a deployment's region keys may not write it. What they found goes
back to a control-queue step that records it (``evaluate``), and the interval's release is
claimed by one (``scoring_interval(..., claim=True)``).

The promotion itself (its gate, what it records), shadow scores and scoring are
:mod:`pipelines.models`'s; what is here decides nothing they do not check again.
:func:`model_releases` is what the Lockstep view shows of the model.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from pipelines.errors import CertificationError
from pipelines.spec import PipelineSpec

__all__ = ["ReleasePlan", "evaluate", "model_releases", "plan_release", "registered_candidate", "release",
           "release_model", "scoring_interval", "score_region", "shadow_score", "train_candidate"]

@dataclass(frozen=True)
class ReleasePlan:
    """What a release run works on: trained on ``window`` (ending the interval before
    ``evaluate_on``), shadow-scored on ``evaluate_on`` (certified, held out), in force from
    ``effective_from`` on."""

    evaluate_on: str
    until: str
    window: list[str]
    effective_from: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """A row as JSON-safe values (what a task returns)."""
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}


def _certified(spec: PipelineSpec, key: str, root: str | None) -> bool:
    from pipelines.certify import active_certifications

    return key in active_certifications(spec, root=root)


def plan_release(spec: PipelineSpec, interval: str | None = None, *, effective_from: str | None = None,
                 until: str | None = None, root: str | None = None) -> ReleasePlan:
    """The plan of a release evaluated on ``interval`` (default: the newest certified one):
    trained on the ``models.window`` intervals ending with ``until`` (default: the one before
    ``interval``, so the evaluation is held out), in force from ``effective_from`` (default:
    the interval after ``interval``). Refused when ``interval`` is not certified."""
    from pipelines.certify import current_certified
    from pipelines.models import training_window
    from pipelines.models.registry import models_spec

    models_spec(spec)  # a spec without a models: section is refused here, by name
    if interval is None:
        newest = current_certified(spec, root=root)
        if newest is None:
            raise CertificationError(f"{spec.name}: no certified interval to evaluate a model on", retryable=False)
        interval = newest.interval
    iv = spec.interval_at(interval)
    if not _certified(spec, iv.key, root):
        raise CertificationError(f"{spec.name}: interval {iv.key} is not certified: a candidate is evaluated on "
                                 "certified data only", retryable=False)
    last = spec.interval_at(until or iv.start - spec.interval_length).key
    after = effective_from or spec.interval_at(iv.end).key
    return ReleasePlan(iv.key, last, training_window(spec, last), spec.interval_at(after).key)


def train_candidate(spec: PipelineSpec, plan: ReleasePlan, *, exclude: list[str] | None = None,
                    root: str | None = None) -> dict[str, Any]:
    """Train and register the candidate on the plan's certified window (every region; an
    interval in ``exclude`` is left out, and recorded in the model's tags)."""
    from pipelines.models import train

    trained = train(spec, until=plan.until, exclude=exclude, root=root)
    return {"model": trained.name, "version": trained.version, "run_id": trained.run_id,
            "feature_version": trained.feature_version, "generations": trained.generations,
            "metrics": trained.metrics}


def registered_candidate(spec: PipelineSpec, version: str, *, root: str | None = None) -> dict[str, Any]:
    """A version registered already (trained where every region's certified features may be
    read: ``lockstep release train`` with their read keys) as :func:`train_candidate` returns
    one, from its tags in the registry; one Lockstep did not train is refused by name."""
    from pipelines.models.train import TAG, version_tags

    tags = version_tags(spec, str(version), root)
    if tags.get(f"{TAG}pipeline") != spec.name:
        raise CertificationError(f"{spec.name}: model version {version} was not trained by Lockstep on "
                                 f"{spec.name}'s certified data", retryable=False)
    return {"model": spec.models.name if spec.models else "", "version": str(version), "run_id": None,
            "feature_version": tags.get(f"{TAG}feature_version"),
            "generations": json.loads(tags.get(f"{TAG}generations") or "{}"), "metrics": {}}


def shadow_score(spec: PipelineSpec, version: str, interval: str, region: str, *, root: str | None = None,
                 who: str | None = None) -> dict[str, Any]:
    """Score ``region``'s certified ``interval`` with the candidate ``version`` beside the release
    in force for it, writing nothing (:func:`pipelines.models.shadow_metrics`): the row
    :func:`evaluate` records for the promotion gate, as JSON."""
    from pipelines.models import shadow_metrics

    return _plain(shadow_metrics(spec, version, interval, region, root=root, who=who))


def evaluate(spec: PipelineSpec, version: str, shadows: list[dict[str, Any]], *, until: str | None = None,
             root: str | None = None) -> dict[str, Any]:
    """Record ``shadows`` (what this run's :func:`shadow_score` steps returned, every one of
    candidate ``version``) in ``release_evaluations``, then the candidate's evaluation by the
    promotion gate over the window ending with ``until``: per region what its shadow scores
    showed, and every reason it may not be promoted."""
    from pipelines.models import evaluate_promotion, record_shadows

    other = sorted({str(s.get("model_version")) for s in shadows} - {str(version)})
    if other:
        raise CertificationError(f"{spec.name}: shadow evaluations of version(s) {other} handed to the evaluation "
                                 f"of version {version}", retryable=False)
    record_shadows(spec, shadows, root=root)
    return dict(evaluate_promotion(spec, str(version), until=until, root=root).to_json())


def release(spec: PipelineSpec, version: str, plan: ReleasePlan, *, why: str, who: str | None = None,
            root: str | None = None) -> dict[str, Any]:
    """Promote the candidate from the plan's ``effective_from`` on (the models' gate decides,
    refusing with every reason, over the window ending with the plan's ``evaluate_on``); the
    release as JSON."""
    from pipelines.models import promote

    chosen = promote(spec, str(version), effective_from=plan.effective_from, why=why, root=root, who=who,
                     until=plan.evaluate_on)
    return dict(chosen.to_json())


def release_model(spec: PipelineSpec, interval: str | None = None, *, why: str, effective_from: str | None = None,
                  until: str | None = None, exclude: list[str] | None = None, who: str | None = None,
                  root: str | None = None) -> dict[str, Any]:
    """The release DAG's steps in one process: plan, train, shadow-score every region,
    evaluate, promote. Returns the plan, the candidate, its evaluation and the release."""
    plan = plan_release(spec, interval, effective_from=effective_from, until=until, root=root)
    candidate = train_candidate(spec, plan, exclude=exclude, root=root)
    shadows = [shadow_score(spec, candidate["version"], plan.evaluate_on, region, root=root, who=who)
               for region in spec.regions]
    evaluation = evaluate(spec, candidate["version"], shadows, until=plan.evaluate_on, root=root)
    chosen = release(spec, candidate["version"], plan, why=why, who=who, root=root)
    return {"plan": plan.to_json(), "candidate": candidate, "evaluation": evaluation, "release": chosen}


def scoring_interval(spec: PipelineSpec, interval: str | None = None, *, claim: bool = False,
                     who: str | None = None, root: str | None = None) -> dict[str, Any]:
    """The certified interval to score (default: the newest) and the release in force for it;
    refused, saying so, when the interval is not certified or no release is in force for it.
    ``claim``: claim the interval for every region (one commit to the release log, decided
    on the log it lands on) and return the release it is claimed with."""
    from pipelines.certify import current_certified
    from pipelines.models import claim as claim_
    from pipelines.models import release_in_force

    if interval is None:
        newest = current_certified(spec, root=root)
        if newest is None:
            raise CertificationError(f"{spec.name}: no certified interval to score", retryable=False)
        interval = newest.interval
    key = spec.interval_at(interval).key
    if not _certified(spec, key, root):
        raise CertificationError(f"{spec.name}: interval {key} is not certified: nothing to score", retryable=False)
    in_force = release_in_force(spec, key, root=root)
    if in_force is None:
        raise CertificationError(
            f"{spec.name}: no release in force for {key}: nothing scores it until a model is released "
            f"(the {spec.name}_release DAG, or `lockstep release train` then `lockstep release promote`)",
            retryable=False)
    if claim:
        in_force = claim_(spec, key, root=root, who=who)
    return {"interval": key, "release_id": in_force.release_id, "model_version": in_force.model_version}


def score_region(spec: PipelineSpec, interval: str, region: str, *, release_id: str | None = None,
                 root: str | None = None) -> dict[str, Any]:
    """Score ``region``'s certified ``interval`` with the release it is scored with in every
    region (``release_id``: the one :func:`scoring_interval` claimed, the release log only read;
    without it the first scorer claims it): rows, the release and model version every row
    carries, and the hash of the score column. Written to the region's scores table through
    :func:`pipelines.models.score_interval`."""
    from pipelines.models import read_scores, score_hash, score_interval

    key, by = spec.interval_at(interval).key, spec.models.key if spec.models else "txn_id"
    ref = score_interval(spec, key, region, claimed=release_id, root=root)
    frame = read_scores(spec, region, key, root=root).sort(by)
    out: dict[str, Any] = {"region": region, "interval": key, "uri": ref.uri, "version": ref.version}
    empty = not frame.height
    return {**out, "rows": frame.height,
            "release_id": [] if empty else sorted(frame["release_id"].unique().to_list()),
            "model_version": [] if empty else sorted(frame["model_version"].unique().to_list()),
            "score_hash": score_hash(frame.select(c for c in frame.columns if c not in ("ds", "hour")))}


def model_releases(spec: PipelineSpec, *, root: str | None = None) -> dict[str, Any] | None:
    """What the Lockstep view shows of the spec's model (``None``: the spec has none): the
    release in force for the newest certified interval, the one after it when a newer release
    takes effect later, the release history (refusals included where the log records them)
    and each candidate's per-region shadow evaluations (where they are recorded). Control
    tables only: the release log and the evaluations, never the registry or a region's data."""
    if spec.models is None:
        return None
    from pipelines.certify import current_certified
    from pipelines.models import evaluations, history, release_in_force

    log = history(spec, root=root)
    newest = current_certified(spec, root=root)
    in_force = release_in_force(spec, newest.interval, root=root) if newest is not None else None
    live = [r for r in log if r.kind in ("promote", "rollback")]
    upcoming = live[-1] if live and (in_force is None or live[-1].release_id != in_force.release_id) else None
    frame = evaluations(spec, root=root)
    shadows = [_plain(r) for r in frame.iter_rows(named=True)]
    return {"model": spec.models.name, "interval": newest.interval if newest else None,
            "in_force": in_force.to_json() if in_force else None,
            "upcoming": upcoming.to_json() if upcoming else None,
            "history": [r.to_json() for r in reversed(log)], "evaluations": shadows}
