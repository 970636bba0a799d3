"""Scoring through the release: one region's certified interval, with the release in force for it.

:func:`score` reads the interval's certified features (:func:`~pipelines.certify.read_certified`
at that interval), loads the release's model version from the registry (once per process) and
returns one row per scored key, each carrying ``release_id`` and ``model_version``. Passing
``release=`` replays the interval with an earlier release; the same release gives the same
scores bit for bit (:func:`score_hash`).
"""

from __future__ import annotations

import hashlib

import polars as pl

from pipelines.certify import read_certified
from pipelines.errors import CertificationError
from pipelines.models.registry import load_model, models_spec
from pipelines.models.releases import find_release, release_in_force, releases
from pipelines.models.train import features_frame
from pipelines.spec import PipelineSpec


def score(spec: PipelineSpec, interval: str, region: str, *, release: str | None = None,
          root: str | None = None) -> pl.DataFrame:
    """Score ``region``'s certified ``interval`` with the release in force for it (or ``release``)."""
    ms = models_spec(spec)
    log = releases(spec, root=root)
    key = spec.interval_at(interval).key
    chosen = find_release(spec, release, log=log) if release else release_in_force(spec, key, log=log)
    if chosen is None:
        raise CertificationError(f"{spec.name}: no release in force for {key}", retryable=False)
    data = read_certified(spec, ms.feature_table, region, at=key, root=root).collect().sort(ms.key)
    found = sorted(str(v) for v in data["feature_version"].unique()) if "feature_version" in data.columns else []
    if found and found != [chosen.feature_version]:
        raise CertificationError(f"{spec.name}: {region} {key} holds feature version(s) {found}; release "
                                 f"{chosen.release_id} reads {chosen.feature_version!r}", retryable=False)
    model = load_model(spec, chosen.model_version, root)
    proba = model.predict_proba(features_frame(data, ms.features))[:, 1] if data.height else []
    return data.select(ms.key).with_columns(
        region=pl.lit(region), interval=pl.lit(key), score=pl.Series("score", proba, dtype=pl.Float64),
        release_id=pl.lit(chosen.release_id), model_version=pl.lit(chosen.model_version),
    )


def score_hash(frame: pl.DataFrame) -> str:
    """A hash of the keys and the exact bits of the score column (equal iff every score is)."""
    digest = hashlib.sha256()
    for column in frame.columns:
        if column == "score":
            digest.update(frame["score"].to_numpy().tobytes())
        elif column not in ("release_id", "model_version", "region", "interval"):
            digest.update("\x1f".join(str(v) for v in frame[column].to_list()).encode())
    return digest.hexdigest()
