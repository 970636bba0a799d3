"""Scoring through the release: one region's certified interval, with the one release the
interval is scored with in every region.

The first scorer of an interval commits a *claim* to the release log (the interval and the
release in force for it, decided on the log at the claim's own commit); every scorer of the
interval, in any region and process, then uses the claimed release. A promotion or rollback
takes effect only after every claimed interval (checked against the log at its commit), so
an interval is never scored with two releases, however the commits interleave.

Where region workers may not write the control plane (a deployment's IAM), the claim is made
once on the control queue (:func:`claim`, the scoring DAG's ``release_in_force`` task) and
each region scores with ``claimed=<release id>``: the log is only read, and the interval must
be claimed with exactly that release (:func:`claimed_release`), else nothing is scored.

:func:`score` returns the scores (one row per key, each with ``release_id`` and
``model_version``); :func:`score_interval` also writes them to the region's scores table
``<root>/<pipeline>/<region>/scores/<model>``, partitioned by interval (an idempotent
predicate overwrite, like every interval write). ``release=`` replays an interval with any
earlier release, without a claim or a write; the same release gives the same scores bit for
bit (:func:`score_hash`). Models come from the registry, loaded once per process.

Example::

    ref = score_interval(spec, "2026-01-04", "eu-west")      # claims 2026-01-04 if first
    scored = read_scores(spec, "eu-west", "2026-01-04")      # release_id: one value
    replay = score(spec, "2026-01-04", "eu-west", release="fraud_model-r1")
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import polars as pl

from pipelines.certify import read_certified
from pipelines.errors import CertificationError
from pipelines.models.log import (
    Release,
    append_decision,
    claims,
    find_release,
    read_log,
    release_in_force,
)
from pipelines.models.registry import load_model, models_spec
from pipelines.models.train import features_frame
from pipelines.spec import PipelineSpec, partition_columns
from pipelines.spec.settings import settings
from pipelines.storage import TableRef, fingerprint, read_table, write_interval

#: the layer scores are written to: ``<root>/<pipeline>/<region>/scores/<model>``
SCORES_LAYER = "scores"


def claim(spec: PipelineSpec, interval: str, region: str = "", *, root: str | None = None,
          who: str | None = None) -> Release:
    """The release ``interval`` is scored with in every region: the claimed one, else the
    release in force for it, claimed now (one commit, decided on the log it lands on).
    ``region``: the region claiming it ('' when one control task claims it for every region)."""
    key = spec.interval_at(interval).key
    who = who or settings().who()

    def build(log: list[Release], v: int) -> dict[str, Any] | None:
        if key in claims(log):
            return None  # claimed already: every scorer of the interval uses that release
        chosen = release_in_force(spec, key, log=log)
        if chosen is None:
            raise CertificationError(f"{spec.name}: no release in force for {key}: promote a model first",
                                     retryable=False)
        iv = spec.interval_at(key)
        return {"release_id": chosen.release_id, "model_version": chosen.model_version,
                "feature_version": chosen.feature_version, "plan_hash": chosen.plan_hash, "effective_from": key,
                "effective_start": iv.start, "who": who, "why": f"{region or 'every region'} scores {key}", "kind": "claim",
                "target": chosen.release_id, "released_at": datetime.now(UTC), "interval": key, "region": region}

    row, before = append_decision(spec, build, root=root)
    chosen_id = row.release_id if row is not None else claims(before)[key].release_id
    return find_release(spec, chosen_id, log=before, root=root)


def claimed_release(spec: PipelineSpec, interval: str, release_id: str, *, root: str | None = None) -> Release:
    """The release ``interval`` was claimed with, which must be ``release_id`` (the release log
    read, never written): a region scoring what its control task claimed."""
    key = spec.interval_at(interval).key
    log = read_log(spec, root=root)
    found = claims(log).get(key)
    if found is None:
        raise CertificationError(f"{spec.name}: {key} is not claimed: its release is claimed once for every region "
                                 "(the scoring DAG's release_in_force task) before a region scores it",
                                 retryable=False)
    if found.release_id != release_id:
        raise CertificationError(f"{spec.name}: {key} is claimed with {found.release_id}, not {release_id}: "
                                 "an interval is scored with one release", retryable=False)
    return find_release(spec, release_id, log=log)


def score(spec: PipelineSpec, interval: str, region: str, *, release: str | None = None,
          claimed: str | None = None, root: str | None = None) -> pl.DataFrame:
    """Score ``region``'s certified ``interval`` with the release it is scored with in every
    region (:func:`claim`; ``claimed``: the release it was claimed with, the log only read),
    or replay it with ``release`` (no claim)."""
    ms = models_spec(spec)
    key = spec.interval_at(interval).key
    # certified first: an interval is claimed only once it can be scored. Rows in the order of
    # the certified version's files (listed sorted): a replay meets them in the same order
    data = read_certified(spec, ms.feature_table, region, at=key, root=root).collect()
    if release:
        chosen = find_release(spec, release, root=root)
    elif claimed:
        chosen = claimed_release(spec, key, claimed, root=root)
    else:
        chosen = claim(spec, key, region, root=root)
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


def scores_uri(spec: PipelineSpec, region: str, root: str | None = None) -> str:
    """The region's scores table of the spec's model."""
    return spec.table_uri(region, SCORES_LAYER, models_spec(spec).name, root)


def score_interval(spec: PipelineSpec, interval: str, region: str, *, claimed: str | None = None,
                   root: str | None = None) -> TableRef:
    """Score ``region``'s certified ``interval`` through its release (``claimed``: the one it
    was claimed with, see :func:`score`) and replace its partition of the scores table
    (idempotent: the same release and scores are not written again)."""
    return write_scores(spec, score(spec, interval, region, claimed=claimed, root=root), root=root)


def write_scores(spec: PipelineSpec, frame: pl.DataFrame, *, root: str | None = None) -> TableRef:
    """Replace one region's interval of its scores table with ``frame`` (what :func:`score`
    returned for it), idempotently."""
    if frame.height == 0:
        raise CertificationError(f"{spec.name}: nothing scored: the certified interval holds no rows", retryable=False)
    region, key, release = frame["region"][0], frame["interval"][0], frame["release_id"][0]
    iv = spec.interval_at(key)
    return write_interval(
        scores_uri(spec, region, root), frame, partition=iv.partition(partition_columns(spec.granularity)),
        app_id=f"lockstep/{spec.name}/{region}/{SCORES_LAYER}/{models_spec(spec).name}/{iv.key}",
        fingerprint=fingerprint(release, score_hash(frame)), storage_options=spec.region_options(region))


def read_scores(spec: PipelineSpec, region: str, interval: str | None = None, *, root: str | None = None
                ) -> pl.DataFrame:
    """The region's written scores (one interval's, or all); no table yet reads as no rows."""
    from pipelines.storage import open_table

    uri = scores_uri(spec, region, root)
    if open_table(uri, spec.region_options(region)) is None:
        return pl.DataFrame()
    part = None if interval is None else spec.interval_at(interval).partition(partition_columns(spec.granularity))
    return read_table(uri, partition=part, storage_options=spec.region_options(region)).collect()


def score_hash(frame: pl.DataFrame) -> str:
    """A hash of the keys and the exact bits of the score column (equal iff every score is)."""
    digest = hashlib.sha256()
    for column in frame.columns:
        if column == "score":
            digest.update(frame["score"].to_numpy().tobytes())
        elif column not in ("release_id", "model_version", "region", "interval"):
            digest.update("\x1f".join(str(v) for v in frame[column].to_list()).encode())
    return digest.hexdigest()
