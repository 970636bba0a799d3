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
    evaluate(spec, cand["version"], shadows)                    # every region shadow-scored
    release(spec, cand["version"], plan, why="weekly retrain")
    score_region(spec, "2026-01-06", "eu-west")                 # with the release in force for it

The promotion itself (its gate, what it records) and scoring are :mod:`pipelines.models`'s;
what is here decides nothing they do not check again. Where :mod:`pipelines.models` offers
more (``shadow_score`` recording the evidence its promotion gate reads, ``evaluate_promotion``,
``score_interval`` writing the scores, ``history`` with refusals, ``evaluations``), the steps
use it, found by name; without it they do what the release log alone allows.
:func:`model_releases` is what the Lockstep view shows of the model.
"""

from __future__ import annotations

import inspect
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import numpy as np

from pipelines.errors import CertificationError
from pipelines.spec import PipelineSpec

__all__ = ["ReleasePlan", "evaluate", "model_releases", "plan_release", "release", "release_model",
           "scoring_interval", "score_region", "shadow_score", "train_candidate"]

#: score bins of the shadow PSI (candidate vs the release in force), equal width over [0, 1]
PSI_CELLS, PSI_BINS = 100, 10


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


def _models(name: str) -> Any:
    """``pipelines.models``'s function ``name``, or ``None`` where this version has none."""
    import pipelines.models

    return getattr(pipelines.models, name, None)


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """A row as JSON-safe values (what a task returns)."""
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}


def _kwargs(fn: Any, **wanted: Any) -> dict[str, Any]:
    """The keyword arguments of ``wanted`` that ``fn`` takes (``who``, ``until``: where it has them)."""
    params = inspect.signature(fn).parameters
    return {k: v for k, v in wanted.items() if k in params and v is not None}


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


def _psi(candidate: np.ndarray, champion: np.ndarray) -> float:
    edges = np.linspace(0.0, 1.0, PSI_CELLS + 1)
    from pipelines.reconcile.drift import psi

    value, _ = psi(np.histogram(candidate, edges)[0].astype(float), np.histogram(champion, edges)[0].astype(float),
                   PSI_BINS)
    return value


def shadow_score(spec: PipelineSpec, version: str, interval: str, region: str, *, root: str | None = None,
                 who: str | None = None) -> dict[str, Any]:
    """Score ``region``'s certified ``interval`` with the candidate ``version`` beside the release
    in force for it, without writing a score: rows, ROC AUC against the label, the mean score,
    and the PSI of the candidate's scores against the release's (when one is in force). Through
    ``pipelines.models.shadow_score`` where it exists (it records the row for the promotion gate)."""
    recorded = _models("shadow_score")
    if recorded is not None:
        return _plain(recorded(spec, version, interval, region, root=root, **_kwargs(recorded, who=who)))
    import polars as pl
    from sklearn.metrics import roc_auc_score

    from pipelines.certify import read_certified
    from pipelines.models import load_model, release_in_force, score
    from pipelines.models.registry import models_spec
    from pipelines.models.train import features_frame

    ms = models_spec(spec)
    key = spec.interval_at(interval).key
    data = read_certified(spec, ms.feature_table, region, at=key, root=root).collect().sort(ms.key)
    out: dict[str, Any] = {"region": region, "interval": key, "model_version": str(version), "rows": data.height}
    if not data.height:
        return out
    proba = load_model(spec, str(version), root).predict_proba(features_frame(data, ms.features))[:, 1]
    labels = data[ms.label].cast(pl.Int8).to_numpy()
    if len(set(labels.tolist())) == 2:  # both classes: the metrics are defined
        out["roc_auc"] = float(roc_auc_score(labels, proba))
    out["score_mean"] = float(np.mean(proba))
    in_force = release_in_force(spec, key, root=root)
    if in_force is not None:
        champion = score(spec, key, region, root=root)["score"].to_numpy()
        out.update(baseline_release=in_force.release_id, baseline_version=in_force.model_version,
                   psi=_psi(proba, champion))
    return out


def evaluate(spec: PipelineSpec, version: str, shadows: list[dict[str, Any]], *, until: str | None = None,
             root: str | None = None) -> dict[str, Any]:
    """The candidate's evaluation: per region what its shadow scores showed, and every reason
    it may not be promoted (``pipelines.models.evaluate_promotion``'s, where it exists, over
    the window ending with ``until``). Without that gate: refused, naming them, unless every
    region was shadow-scored on at least one row."""
    gate = _models("evaluate_promotion")
    if gate is not None:
        return dict(gate(spec, str(version), root=root, **_kwargs(gate, until=until)).to_json())
    by_region = {s["region"]: s for s in shadows if str(s.get("model_version")) == str(version)}
    missing = [r for r in spec.regions if not by_region.get(r, {}).get("rows")]
    if missing:
        raise CertificationError(f"{spec.name}: candidate {version} was not shadow-scored in {', '.join(missing)}",
                                 retryable=False)
    return {"version": str(version), "admitted": True, "reasons": [],
            "regions": {r: by_region[r] for r in spec.regions}}


def release(spec: PipelineSpec, version: str, plan: ReleasePlan, *, why: str, who: str | None = None,
            root: str | None = None) -> dict[str, Any]:
    """Promote the candidate from the plan's ``effective_from`` on (the models' gate decides,
    refusing with every reason, over the window ending with the plan's ``evaluate_on``); the
    release as JSON."""
    promote = _models("promote")
    chosen = promote(spec, str(version), effective_from=plan.effective_from, why=why, root=root,
                     **_kwargs(promote, who=who, until=plan.evaluate_on))
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


def scoring_interval(spec: PipelineSpec, interval: str | None = None, *, root: str | None = None
                     ) -> dict[str, Any]:
    """The certified interval to score (default: the newest) and the release in force for it;
    refused, saying so, when the interval is not certified or no release is in force for it."""
    from pipelines.certify import current_certified
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
    return {"interval": key, "release_id": in_force.release_id, "model_version": in_force.model_version}


def score_region(spec: PipelineSpec, interval: str, region: str, *, root: str | None = None) -> dict[str, Any]:
    """Score ``region``'s certified ``interval`` with the release in force for it: rows, the
    release and model version every row carries, and the hash of the score column. Written to
    the region's scores table through ``pipelines.models.score_interval`` where it exists."""
    from pipelines.models import score, score_hash

    key, by = spec.interval_at(interval).key, spec.models.key if spec.models else "txn_id"
    write, read = _models("score_interval"), _models("read_scores")
    out: dict[str, Any] = {"region": region, "interval": key}
    if write is not None and read is not None:
        ref = write(spec, key, region, root=root)
        frame = read(spec, region, key, root=root).sort(by)
        out.update(uri=ref.uri, version=ref.version)
    else:
        frame = score(spec, key, region, root=root)
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
    from pipelines.models import release_in_force, releases

    history_of = _models("history")
    log = history_of(spec, root=root) if history_of is not None else releases(spec, root=root)
    newest = current_certified(spec, root=root)
    in_force = release_in_force(spec, newest.interval, root=root) if newest is not None else None
    live = [r for r in log if r.kind in ("promote", "rollback")]
    upcoming = live[-1] if live and (in_force is None or live[-1].release_id != in_force.release_id) else None
    evaluations_of = _models("evaluations")
    shadows = None
    if evaluations_of is not None:
        frame = evaluations_of(spec, root=root)
        shadows = [_plain(r) for r in frame.iter_rows(named=True)] if frame.height else []
    return {"model": spec.models.name, "interval": newest.interval if newest else None,
            "in_force": in_force.to_json() if in_force else None,
            "upcoming": upcoming.to_json() if upcoming else None,
            "history": [r.to_json() for r in reversed(log)], "evaluations": shadows}
