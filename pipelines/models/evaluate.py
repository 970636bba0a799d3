"""The promotion gate's evidence: shadow scores of a candidate model version, and the gate itself.

:func:`shadow_score` scores one region's certified interval with the candidate *and* with the
release in force (the newest release: the one the candidate would replace), and appends one
row to the control table ``release_evaluations``: both ROC AUCs (when the interval holds both
classes), the score means and the PSI between the two score distributions. The rows are the
evidence the gate decides on; :func:`evaluations` returns them (the view shows them). The two
halves apart: :func:`shadow_metrics` computes the row where the region's data is (a region
worker, which may not write the control plane), :func:`record_shadows` appends rows on the
control plane (the release DAG's ``evaluate`` task).

:func:`evaluate_promotion` is the gate, from control tables only (the decision log, the
evidence store, the release log, ``release_evaluations``) plus the load check of the artifact.
It returns every reason a promotion is refused, each naming its region and interval where it
has them; an empty list admits the candidate.

Example::

    for region in spec.regions:
        shadow_score(spec, "3", "2026-01-01T01:45", region)
    evaluation = evaluate_promotion(spec, "3")
    evaluation.reasons      # [] -> promote(spec, "3", why=...) will pass the same gate
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import polars as pl

from pipelines.certify import active_certifications, current_certified, decisions, read_certified
from pipelines.control.tables import RELEASE_EVALUATIONS_TABLE
from pipelines.errors import CertificationError, LockstepError, SpecError
from pipelines.models.log import Release, newest_release, read_log
from pipelines.models.registry import load_model, models_spec
from pipelines.models.train import (
    TAG,
    feature_version_in_force,
    features_frame,
    plan_hash_in_force,
    version_tags,
)
from pipelines.models.window import WINDOW_CHECK, newest_decided, window_keys, window_state
from pipelines.spec import PipelineSpec
from pipelines.spec.settings import settings


def psi(expected: np.ndarray, actual: np.ndarray, bins: int = 10) -> float:
    """Population stability index of ``actual`` against ``expected``: bins are the quantiles
    of ``expected``; empty bins count as 1e-4 of the rows."""
    if len(expected) == 0 or len(actual) == 0:
        return 0.0
    edges = np.unique(np.quantile(expected, np.linspace(0, 1, bins + 1)[1:-1]))
    e = np.bincount(np.searchsorted(edges, expected, side="right"), minlength=len(edges) + 1) / len(expected)
    a = np.bincount(np.searchsorted(edges, actual, side="right"), minlength=len(edges) + 1) / len(actual)
    e, a = np.clip(e, 1e-4, None), np.clip(a, 1e-4, None)
    return float(np.sum((a - e) * np.log(a / e)))


def _auc(y: np.ndarray, proba: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, proba)) if len(set(y.tolist())) == 2 else None


def _uri(spec: PipelineSpec, root: str | None) -> str:
    return spec.lockstep_uri(RELEASE_EVALUATIONS_TABLE.name, root)


def shadow_score(spec: PipelineSpec, version: str | int, interval: str, region: str, *, root: str | None = None,
                 who: str | None = None) -> dict[str, Any]:
    """Score ``region``'s certified ``interval`` with candidate ``version`` beside the release
    in force, and record the comparison in ``release_evaluations``. Returns the row."""
    row = shadow_metrics(spec, version, interval, region, root=root, who=who)
    record_shadows(spec, [row], root=root)
    return row


def record_shadows(spec: PipelineSpec, rows: list[dict[str, Any]], *, root: str | None = None) -> int:
    """Append shadow evaluations (what :func:`shadow_metrics` returned, or their JSON form:
    ``recorded_at`` an ISO time) to ``release_evaluations``, in one commit; checked first, so a
    bad row writes nothing. Returns how many."""
    ms, columns = models_spec(spec), RELEASE_EVALUATIONS_TABLE.schema.names()
    out = []
    for i, row in enumerate(rows):
        missing = sorted(set(columns) - set(row))
        if missing or row.get("pipeline") != spec.name or row.get("model_name") != ms.name \
                or row.get("region") not in spec.regions:
            what = (f"missing {', '.join(missing)}" if missing else
                    f"pipeline {row.get('pipeline')!r}, model {row.get('model_name')!r}, region {row.get('region')!r}")
            raise SpecError(f"{spec.name}: shadow evaluation {i} is not one of {ms.name} in this pipeline's regions "
                            f"({what})", field="shadows")
        at = row["recorded_at"]
        out.append({c: row[c] for c in columns} | {"recorded_at": datetime.fromisoformat(at) if isinstance(at, str) else at})
    if out:
        RELEASE_EVALUATIONS_TABLE.append(_uri(spec, root), out, spec.control_options())
    return len(out)


def shadow_metrics(spec: PipelineSpec, version: str | int, interval: str, region: str, *, root: str | None = None,
                   who: str | None = None) -> dict[str, Any]:
    """The shadow evaluation of candidate ``version`` on ``region``'s certified ``interval``
    beside the release in force, computed without writing anything (one row of
    ``release_evaluations``; :func:`record_shadows` records it)."""
    from pipelines.models.score import score_hash

    version, ms = str(version), models_spec(spec)
    key = spec.interval_at(interval).key
    decision = current_certified(spec, root=root, at=key)
    if decision is None:
        raise CertificationError(f"{spec.name}: cannot shadow-score {region} {key}: it is not certified", retryable=False)
    data = read_certified(spec, ms.feature_table, region, at=decision.generation_id, root=root).collect().sort(ms.key)
    x = features_frame(data, ms.features)
    y = data[ms.label].cast(pl.Int8).to_numpy()
    proba = load_model(spec, version, root).predict_proba(x)[:, 1] if data.height else np.array([])
    baseline = newest_release(read_log(spec, root=root))
    base = None
    if baseline is not None and data.height:
        base = load_model(spec, baseline.model_version, root).predict_proba(x)[:, 1]
    row = {
        "pipeline": spec.name, "model_name": ms.name, "model_version": version, "region": region, "interval": key,
        "generation_id": decision.generation_id, "rows": data.height, "positives": int(y.sum()),
        "roc_auc": _auc(y, proba), "score_mean": float(proba.mean()) if data.height else None,
        "score_hash": score_hash(data.select(ms.key).with_columns(score=pl.Series(proba, dtype=pl.Float64))),
        "baseline_release": baseline.release_id if baseline else None,
        "baseline_version": baseline.model_version if baseline else None,
        "baseline_roc_auc": None if base is None else _auc(y, base),
        "baseline_mean": None if base is None else float(base.mean()),
        "psi": None if base is None else psi(base, proba, ms.promotion.psi_bins),
        "who": who or settings().who(), "recorded_at": datetime.now(UTC),
    }
    return row


def evaluations(spec: PipelineSpec, *, version: str | int | None = None, root: str | None = None) -> pl.DataFrame:
    """The shadow evaluations recorded (of one candidate ``version``, or all), oldest first."""
    opts = spec.control_options()
    where: dict[str, str | int] | None = None if version is None else {"model_version": str(version)}
    frame = RELEASE_EVALUATIONS_TABLE.scan(RELEASE_EVALUATIONS_TABLE.open(_uri(spec, root), opts), opts,
                                           where=where).collect()
    return frame.sort("recorded_at")


@dataclass
class Evaluation:
    """The promotion gate's verdict on one candidate: every reason it is refused ([]: admitted)."""

    version: str
    window: list[str]
    baseline: str | None  # the release in force it would replace
    reasons: list[dict[str, Any]] = field(default_factory=list)
    regions: dict[str, dict[str, Any]] = field(default_factory=dict)  # per region: what the shadow scores showed
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def admitted(self) -> bool:
        return not self.reasons

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "window": self.window, "baseline": self.baseline, "admitted": self.admitted,
                "reasons": self.reasons, "regions": self.regions}


def _reason(check: str, message: str, region: str = "*", interval: str = "*", **more: Any) -> dict[str, Any]:
    return {"check_id": check, "region": region, "interval": interval, "message": message, **more}


def _binding_reasons(spec: PipelineSpec, tags: dict[str, str], active: dict[str, Any]) -> list[dict[str, Any]]:
    """The candidate's bindings: trained by Lockstep on this pipeline, on the feature version and
    plan in force, on generations still certified."""
    if tags.get(f"{TAG}pipeline") != spec.name:
        return [_reason("promotion.trained", f"it was not trained by Lockstep on {spec.name}'s certified data")]
    out = []
    in_force, plan = feature_version_in_force(spec), plan_hash_in_force(spec)
    if tags.get(f"{TAG}feature_version") != in_force:
        out.append(_reason("promotion.feature_version", f"it was trained on feature version "
                           f"{tags.get(f'{TAG}feature_version')!r}; the feature version in force is {in_force!r}"))
    if tags.get(f"{TAG}plan_hash") != plan:
        out.append(_reason("promotion.plan_hash", f"it was trained under feature plan {tags.get(f'{TAG}plan_hash')!r}; "
                           f"the plan in force is {plan!r}"))
    for key, gen in sorted(json.loads(tags.get(f"{TAG}generations") or "{}").items()):
        if key not in active or active[key].generation_id != gen:
            out.append(_reason("promotion.trained_on", f"it was trained on generation {gen} of {key}, which is no "
                               "longer certified", interval=key))
    return out


def _shadow_reasons(spec: PipelineSpec, ev: Evaluation, rows: pl.DataFrame, state: Any,
                    baseline: Release | None) -> list[dict[str, Any]]:
    """Per region: shadow-scored on enough certified intervals of the window, against the
    release in force, with its AUC and PSI within the spec's thresholds."""
    promo = models_spec(spec).promotion
    out = []
    for region in spec.regions:
        mine = [r for r in rows.iter_rows(named=True) if r["region"] == region and r["interval"] in state.active
                and r["generation_id"] == state.active[r["interval"]].generation_id and state.certified(region, r["interval"])]
        if baseline is not None:
            against = {r["baseline_release"] for r in mine}
            mine = [r for r in mine if r["baseline_release"] == baseline.release_id]
            if not mine and against:
                out.append(_reason("promotion.shadow", f"{region}: shadow-scored against {sorted(map(str, against))}, "
                                   f"but {baseline.release_id} is in force: shadow-score again", region))
                continue
        last = {r["interval"]: r for r in mine}  # the newest evaluation of each interval counts
        seen = sorted(last)
        ev.regions[region] = {"intervals": seen}
        if len(seen) < promo.min_shadow_intervals:
            out.append(_reason("promotion.shadow", f"{region}: shadow-scored on {len(seen)} certified interval(s) of "
                               f"the window, {promo.min_shadow_intervals} needed", region))
            continue
        if baseline is None:
            continue  # the first release: nothing to compare with, shadow-scored all the same
        aucs = [(r["roc_auc"], r["baseline_roc_auc"]) for r in last.values()
                if r["roc_auc"] is not None and r["baseline_roc_auc"] is not None]
        worst_psi = max(float(r["psi"] or 0.0) for r in last.values())
        ev.regions[region].update(psi=worst_psi)
        if not aucs and promo.max_auc_drop < 1:  # a drop of 1 admits any AUC: nothing to measure
            out.append(_reason("promotion.auc", f"{region}: no shadow-scored interval holds both classes: ROC AUC "
                               "cannot be compared", region))
        elif aucs:
            cand, base = float(np.mean([a for a, _ in aucs])), float(np.mean([b for _, b in aucs]))
            ev.regions[region].update(roc_auc=cand, baseline_roc_auc=base)
            if cand < base - promo.max_auc_drop:
                out.append(_reason("promotion.auc", f"{region}: ROC AUC {cand:.4f} is below the release in force's "
                                   f"{base:.4f} by more than {promo.max_auc_drop}", region, observed=cand,
                                   threshold=base - promo.max_auc_drop))
        if worst_psi >= promo.max_psi:
            bad = max(last.values(), key=lambda r: float(r["psi"] or 0.0))
            out.append(_reason("promotion.psi", f"{region}: PSI {worst_psi:.4f} between the candidate's and "
                               f"{baseline.release_id}'s scores on {bad['interval']} is not under {promo.max_psi}",
                               region, bad["interval"], observed=worst_psi, threshold=promo.max_psi))
    return out


def evaluate_promotion(spec: PipelineSpec, version: str | int, *, until: str | None = None, root: str | None = None,
                       now: datetime | None = None, log: list[Release] | None = None, load: bool = True) -> Evaluation:
    """The promotion gate over the evaluation window (``models.promotion.window`` intervals
    ending with ``until``, default the newest interval the decision log has decided): every
    reason candidate ``version`` may not be released. ``load``: run the artifact's load check."""
    from pipelines.models.releases import load_check

    version, promo = str(version), models_spec(spec).promotion
    decided = decisions(spec, root=root)
    end = until or newest_decided(decided)
    log = read_log(spec, root=root) if log is None else log
    baseline = newest_release(log)
    if end is None:
        return Evaluation(version, [], baseline.release_id if baseline else None,
                          [_reason(WINDOW_CHECK, f"{spec.name}: no interval was ever decided: nothing to evaluate on")])
    keys = window_keys(spec, end, promo.window)
    state = window_state(spec, keys, root=root, now=now, log=decided)
    ev = Evaluation(version, keys, baseline.release_id if baseline else None, list(state.reasons))
    try:
        ev.tags = version_tags(spec, version, root)
    except LockstepError as exc:
        ev.reasons.append(_reason("promotion.registered", f"model version {version} cannot be read from the "
                                  f"registry: {exc}"))
        return ev
    except Exception as exc:  # MLflow's own: no such version
        ev.reasons.append(_reason("promotion.registered", f"no registered version {version} of "
                                  f"{models_spec(spec).name}: {str(exc).splitlines()[0]}"))
        return ev
    ev.reasons += _binding_reasons(spec, ev.tags, active_certifications(spec, log=decided, now=now))
    rows = evaluations(spec, version=version, root=root).filter(pl.col("interval").is_in(keys))
    ev.reasons += _shadow_reasons(spec, ev, rows, state, baseline)
    if load:
        try:
            load_check(spec, version, root)
        except Exception as exc:
            ev.reasons.append(_reason("promotion.load_check", f"the artifact failed its load check: "
                                      f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"))
    return ev

