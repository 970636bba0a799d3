"""Certified model releases: one model, one feature version, one suite set, in force in every
region at once, trained and scored only on certified data.

The package, by concern::

    registry.py   the MLflow registry of a spec (SQLite and a folder under the control root by default)
    train.py      training on a window of certified intervals, logged and registered with its bindings
    log.py        the release log (an ordered control table): releases, refusals, scoring claims, in force
    window.py     the evaluation window's certification state, from the decision log and the evidence
    evaluate.py   shadow scores (control table release_evaluations) and the promotion gate
    releases.py   promote (through the gate; refusals recorded), rollback (load-checked first)
    score.py      scoring an interval through the one release it is scored with, written per region

Example::

    trained = train(spec, until="2026-01-03")
    for region in spec.regions:
        shadow_score(spec, trained.version, "2026-01-03", region)
    release = promote(spec, trained.version, why="first model")    # effective: the next unscored interval
    score_interval(spec, "2026-01-04", "eu-west")                   # every row: release_id, model_version
    rollback(spec, why="it misbehaves")                              # to the release before the one in force
"""

from __future__ import annotations

from pipelines.models.evaluate import (
    Evaluation,
    evaluate_promotion,
    evaluations,
    psi,
    record_shadows,
    shadow_metrics,
    shadow_score,
)
from pipelines.models.log import (
    Release,
    claims,
    find_release,
    history,
    newest_release,
    next_unscored,
    read_log,
    release_in_force,
)
from pipelines.models.registry import CHAMPION, artifact_location, load_model, registry_uri

# ``releases`` (the function) is bound after the submodule of the same name is imported, so it wins
from pipelines.models.releases import PromotionRefused, load_check, promote, releases, rollback
from pipelines.models.score import (
    claim,
    claimed_release,
    read_scores,
    score,
    score_hash,
    score_interval,
    scores_uri,
    write_scores,
)
from pipelines.models.train import TrainedModel, feature_version_in_force, train, training_window
from pipelines.models.window import WindowState, window_keys, window_state

__all__ = [
    "CHAMPION",
    "Evaluation",
    "PromotionRefused",
    "Release",
    "TrainedModel",
    "WindowState",
    "artifact_location",
    "claim",
    "claimed_release",
    "claims",
    "evaluate_promotion",
    "evaluations",
    "feature_version_in_force",
    "find_release",
    "history",
    "load_check",
    "load_model",
    "newest_release",
    "next_unscored",
    "promote",
    "psi",
    "read_log",
    "read_scores",
    "record_shadows",
    "registry_uri",
    "release_in_force",
    "releases",
    "rollback",
    "score",
    "score_hash",
    "score_interval",
    "scores_uri",
    "shadow_metrics",
    "shadow_score",
    "train",
    "training_window",
    "window_keys",
    "window_state",
    "write_scores",
]
