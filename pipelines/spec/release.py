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
"""

from __future__ import annotations

from pydantic import Field

from pipelines.spec.base import Name, _Model

#: the flagship's card features a model trains on by default
DEFAULT_FEATURES = [
    "amount", "amount_zscore", "txn_count_1h", "amount_sum_1h", "txn_count_24h", "amount_sum_24h",
    "txn_count_7d", "distinct_merchants_24h", "first_seen_in_region",
]


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
    registry_uri: str | None = Field(
        None, description="MLflow registry and tracking URI; default: a SQLite file under the control root",
        examples=["postgresql://lockstep@db/mlflow"],
    )
    artifact_location: str | None = Field(
        None, description="where model artifacts are stored; default: a folder under the control root",
        examples=["s3://control-bucket/mlflow"],
    )
