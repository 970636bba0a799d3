"""Feature transforms: polars functions from input tables to one features table.

A transform is ``fn(inputs: dict[str, pl.LazyFrame], ctx: FeatureContext) -> pl.LazyFrame``,
named in the spec as ``module:function``. ``inputs`` holds each input table lazily, from
``ctx.interval.start - lookback`` to the interval's end (reference tables: the interval's
snapshot only); the result must hold the interval's rows only, with a ``ds`` column.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from pipelines.errors import FeatureError
from pipelines.spec import FeatureSetSpec, Interval

Transform = Callable[[dict[str, pl.LazyFrame], "FeatureContext"], pl.LazyFrame]


@dataclass(frozen=True)
class FeatureContext:
    interval: Interval
    region: str
    version: str
    params: dict[str, Any] = field(default_factory=dict)


def load_transform(fs: FeatureSetSpec) -> Transform:
    """Import the transform a feature set names (``module:function``)."""
    module_name, _, attr = fs.transform.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise FeatureError(f"feature set {fs.name!r}: cannot import {module_name!r}: {exc}") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise FeatureError(f"feature set {fs.name!r}: {fs.transform!r} is not a function")
    return fn  # type: ignore[no-any-return]
