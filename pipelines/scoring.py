"""The deployment's fixed consumer: deterministic fraud scores from certified features only.

The repository's scoring DAG scores through the model release in force
(:mod:`pipelines.release_flow`, :mod:`pipelines.models`); the compose deployment
(``docker/dags/fraud_model_scoring.py``) still runs this fixed logistic score until it has a
model registry of its own (a PostgreSQL database and the control bucket: ``models.registry_uri``
and ``models.artifact_location``). What matters is *where* it reads:
:func:`~pipelines.certify.read_certified`, at the generation the gate certified, so a blocked
interval never reaches it.
"""

from __future__ import annotations

import polars as pl

from pipelines.certify import current_certified, read_certified
from pipelines.errors import CertificationError
from pipelines.spec import PipelineSpec
from pipelines.storage import TableRef, fingerprint, write_interval

SCORES_LAYER = "scores"
MODEL_VERSION = "logistic-v1"


def score_frame(card: pl.LazyFrame, merchant: pl.LazyFrame) -> pl.LazyFrame:
    """A fixed logistic score over a few card and merchant features."""
    z = pl.col("amount_zscore").fill_null(0.0).clip(-5, 5)
    logit = (
        -5.0
        + 0.8 * z
        + 0.9 * pl.col("first_seen_in_region").cast(pl.Float64)
        + 0.15 * pl.col("txn_count_1h").cast(pl.Float64).clip(0, 10)
        + 2.5 * pl.col("risk_score").fill_null(0.0)
        + 4.0 * pl.col("fraud_rate_7d").fill_null(0.0)
    )
    return (
        card.select("txn_id", "card_id", "merchant_id", "event_time", "amount", "amount_zscore",
                    "first_seen_in_region", "txn_count_1h", "ds")
        .join(merchant.select("merchant_id", "risk_score", "fraud_rate_7d"), on="merchant_id", how="left")
        .select("txn_id", "card_id", "event_time", "ds", fraud_score=1.0 / (1.0 + (-logit).exp()),
                model_version=pl.lit(MODEL_VERSION))
    )


def score_certified(
    spec: PipelineSpec, *, generation_id: str | None = None, consumer: str = "fraud_model_scoring",
    root: str | None = None, regions: list[str] | None = None,
) -> dict[str, TableRef]:
    """Score every region's certified interval; writes ``<region>/scores/<consumer>``."""
    cons = next((c for c in spec.consumers if c.name == consumer), None)
    if cons is None:
        raise CertificationError(f"{spec.name}: no consumer named {consumer!r} in the spec")
    decision = current_certified(spec, root=root, at=generation_id)
    if decision is None:
        raise CertificationError(f"{spec.name}: no certified generation to score")
    out = {}
    for region in regions or spec.regions:
        card = read_certified(spec, "card_features", region, at=decision.generation_id, root=root,
                              max_staleness=None if generation_id else cons.max_staleness)
        merchant = read_certified(spec, "merchant_features", region, at=decision.generation_id, root=root)
        uri = spec.table_uri(region, SCORES_LAYER, consumer, root)
        out[region] = write_interval(
            uri, score_frame(card, merchant), partition={"ds": decision.interval[:10]},
            app_id=f"lockstep/{spec.name}/{region}/{SCORES_LAYER}/{consumer}/{decision.interval}",
            fingerprint=fingerprint(MODEL_VERSION, decision.generation_id), storage_options=spec.region_options(region),
        )
    return out
