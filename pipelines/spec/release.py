"""The ``models:`` section: the one model a pipeline's certified features train and score.

It names the model, the features table it reads (through certification only), the label and
feature columns, the training window (a number of intervals), the seed that makes training
deterministic, and where the model registry lives. With no ``registry_uri`` the registry is
a SQLite file beside the control tables and the artifacts a folder there (no server to
start); a deployment points both at its own database and bucket.

Example (YAML)::

    models:
      name: fraud_model
      feature_table: card_features
      label: is_fraud
      features: [amount, amount_zscore, txn_count_1h, txn_count_24h, first_seen_in_region]
      window: 3
      promotion:                 # the promotion gate (every field has a default)
        window: 7                # evaluation window: intervals that must be certified in every region
        max_auc_drop: 0.02       # candidate ROC AUC no worse than the release in force by more than this
        max_psi: 0.25            # per region: PSI between candidate and in-force scores under this
        min_shadow_intervals: 1  # per region: certified intervals the candidate was shadow-scored on
"""

from __future__ import annotations

from pydantic import Field

from pipelines.spec.base import Name, _Model

#: the flagship's card features a model trains on by default
DEFAULT_FEATURES = [
    "amount", "amount_zscore", "txn_count_1h", "amount_sum_1h", "txn_count_24h", "amount_sum_24h",
    "txn_count_7d", "distinct_merchants_24h", "first_seen_in_region",
]


class PromotionSpec(_Model):
    """The promotion gate: what a candidate must show, from the control plane only, to be released.

    Every interval of the evaluation window certified in every region; shadow scores on at
    least ``min_shadow_intervals`` of them per region; AUC and PSI against the release in force
    within the bounds below."""

    window: int = Field(7, ge=1, description="evaluation window: how many consecutive intervals, ending with the "
                        "newest decided one (or --until), must be certified in every region", examples=[7])
    max_auc_drop: float = Field(0.02, ge=0, le=1, description="per region: the candidate's ROC AUC may be below the "
                                "release in force's by at most this much (mean over the shadow-scored intervals holding "
                                "both classes; with none, refused unless this is 1, which admits any AUC)", examples=[0.02])
    max_psi: float = Field(0.25, gt=0, description="per region: the population stability index between the "
                           "candidate's and the release in force's scores must stay under this", examples=[0.25])
    min_shadow_intervals: int = Field(1, ge=1, description="per region: how many certified intervals of the window "
                                      "the candidate must have been shadow-scored on", examples=[1])
    psi_bins: int = Field(10, ge=2, le=100, description="bins (quantiles of the release in force's scores) of the PSI",
                          examples=[10])


class ModelsSpec(_Model):
    """The certified model release of a pipeline (one model, in force in every region at once)."""

    name: Name = Field("fraud_model", description="the registered model's name in the model registry", examples=["fraud_model"])
    feature_table: Name = Field("card_features", description="the table the model reads, through certification only", examples=["card_features"])
    label: Name = Field("is_fraud", description="the label column of the feature table (a boolean)", examples=["is_fraud"])
    key: Name = Field("txn_id", description="the column identifying a scored row", examples=["txn_id"])
    features: list[Name] = Field(default_factory=lambda: list(DEFAULT_FEATURES), min_length=1,
                                 description="the feature columns the model reads, in order", examples=[["amount", "amount_zscore"]])
    window: int = Field(3, ge=1, description="training window: how many consecutive intervals, every region", examples=[7])
    seed: int = Field(7, description="the training seed (training is deterministic under it)", examples=[7])
    promotion: PromotionSpec = Field(default_factory=PromotionSpec,
                                     description="the promotion gate a candidate must pass to be released",
                                     examples=[{"window": 7, "max_auc_drop": 0.02, "max_psi": 0.25}])
    registry_uri: str | None = Field(
        None, description="MLflow registry and tracking URI; default: a SQLite file under the control root",
        examples=["postgresql://lockstep@db/mlflow"],
    )
    artifact_location: str | None = Field(
        None, description="where model artifacts are stored; default: a folder under the control root",
        examples=["s3://control-bucket/mlflow"],
    )
