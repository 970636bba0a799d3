"""Certified model releases: one model, one feature version, one suite set, in force in every
region at once, trained and scored only on certified data.

The package, by concern::

    registry.py   the MLflow registry of a spec (SQLite and a folder under the control root by default)
    train.py      training on a window of certified intervals, logged and registered with its bindings
    releases.py   the release log (an ordered control table): promote, rollback, the release in force
    score.py      scoring one region's certified interval through the release in force for it

Example::

    trained = train(spec, until="2026-01-03")
    release = promote(spec, trained.version, effective_from="2026-01-04", why="first model")
    release_in_force(spec, "2026-01-04").model_version   # trained.version
    frame = score(spec, "2026-01-04", "eu-west")          # every row: release_id, model_version
"""

from __future__ import annotations

from pipelines.models.registry import CHAMPION, artifact_location, load_model, registry_uri
from pipelines.models.releases import Release, promote, release_in_force, releases, rollback
from pipelines.models.score import score, score_hash
from pipelines.models.train import TrainedModel, feature_version_in_force, train, training_window

__all__ = [
    "CHAMPION",
    "Release",
    "TrainedModel",
    "artifact_location",
    "feature_version_in_force",
    "load_model",
    "promote",
    "registry_uri",
    "release_in_force",
    "releases",
    "rollback",
    "score",
    "score_hash",
    "train",
    "training_window",
]
