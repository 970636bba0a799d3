"""fraud_features' transforms: the flagship's card and merchant features, as your own code.

They delegate to ``pipelines.features.fraud``; edit them (or replace the delegation with
your own polars) to change a feature, and bump the feature set's ``version`` in the spec.
The contract is documented in ``pipelines.features``: return the interval's rows only,
with ``ds`` and ``feature_version`` (= ``ctx.version``).
"""

from __future__ import annotations

import polars as pl

from pipelines import FeatureContext
from pipelines.features import fraud


def card_features(inputs: dict[str, pl.LazyFrame], ctx: FeatureContext) -> pl.LazyFrame:
    return fraud.card_features(inputs, ctx)


def merchant_features(inputs: dict[str, pl.LazyFrame], ctx: FeatureContext) -> pl.LazyFrame:
    return fraud.merchant_features(inputs, ctx)
