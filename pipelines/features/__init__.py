"""Feature transforms: polars functions from input tables to one features table.

The transform contract
----------------------
A transform is ``fn(inputs: dict[str, pl.LazyFrame], ctx: FeatureContext) -> pl.LazyFrame``:

* ``inputs`` holds every input table the feature set names, lazily: a ``raw`` or ``features``
  input from ``ctx.interval.start - lookback`` to the interval's end (the history a window
  needs), a ``reference`` input only the interval's own snapshot (``ds`` equal to the
  interval's day);
* the result holds **the interval's rows only** (filter the history away after computing
  windows) with a ``ds`` column (and ``hour`` for hourly pipelines) equal to the interval's,
  the output table's ``keys`` unique, and, if it declares one, a ``feature_version`` column
  equal to ``ctx.version`` (the schema check holds every region to the spec's version);
* it is pure: no I/O, no clock; the same inputs give the same frame (writes are skipped when
  nothing that feeds them changed, and re-runs must reproduce certified data).

It is named in the spec as ``module:function`` (a module importable as installed, or one next
to the spec file) or ``path/to/file.py:function`` (relative to the spec's folder). Example::

    import polars as pl
    from pipelines import FeatureContext

    def customer_features(inputs: dict[str, pl.LazyFrame], ctx: FeatureContext) -> pl.LazyFrame:
        orders = inputs["orders"]
        week = orders.group_by("customer_id").agg(orders_7d=pl.len())
        today = (orders.filter(pl.col("ds") == ctx.interval.ds)
                 .group_by("customer_id").agg(amount_1d=pl.col("amount").sum()))
        return today.join(week, on="customer_id", how="left").with_columns(
            ds=pl.lit(ctx.interval.ds), feature_version=pl.lit(ctx.version))
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import polars as pl

from pipelines.errors import FeatureError
from pipelines.spec import FeatureSetSpec, Interval

Transform = Callable[[dict[str, pl.LazyFrame], "FeatureContext"], pl.LazyFrame]


@dataclass(frozen=True)
class FeatureContext:
    """What a transform knows about its run: the interval, the region, the feature set's
    ``version`` and ``params`` from the spec."""

    interval: Interval
    region: str
    version: str
    params: dict[str, Any] = field(default_factory=dict)


def load_transform(fs: FeatureSetSpec, base: Path | None = None) -> Transform:
    """Import the transform a feature set names.

    ``module:function`` imports an installed module, else one in ``base`` (default: the
    folder of the spec the feature set was loaded from), the way Airflow imports modules of
    its dags folder. ``path/to/file.py:function`` loads that file, relative to ``base``.
    The same import works in the CLI and in an Airflow task, with no ``PYTHONPATH``.
    """
    target, _, attr = fs.transform.rpartition(":")
    base = base if base is not None else fs.base_dir
    if target.endswith(".py"):
        module = _load_file(fs, target, base)
    else:
        module = _import_module(fs, target, base)
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise FeatureError(f"feature set {fs.name!r}: {fs.transform!r}: no function {attr!r} in {module.__name__}")
    return fn  # type: ignore[no-any-return]


def _import_module(fs: FeatureSetSpec, name: str, base: Path | None) -> ModuleType:
    top = name.split(".")[0]
    local = base is not None and ((base / f"{top}.py").is_file() or (base / top / "__init__.py").is_file())
    if local and base is not None and str(base) not in sys.path:
        # like Airflow's dags folder: the spec's folder becomes importable, so the module's own
        # imports of its neighbours work too
        sys.path.insert(0, str(base))
        importlib.invalidate_caches()
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        where = f" (also looked in {base})" if base is not None else ""
        raise FeatureError(f"feature set {fs.name!r}: cannot import {name!r}{where}: {exc}") from None
    except Exception as exc:
        raise FeatureError(f"feature set {fs.name!r}: importing {name!r} failed: {type(exc).__name__}: {exc}") from None
    if local and base is not None:
        origin = Path(getattr(module, "__file__", "") or "").resolve()
        if not origin.is_relative_to(base.resolve()):
            raise FeatureError(
                f"feature set {fs.name!r}: module {name!r} was imported from {origin}, not from the spec's "
                f"folder {base}; rename the module or use the file form 'file.py:function'"
            )
    return module


def _load_file(fs: FeatureSetSpec, target: str, base: Path | None) -> ModuleType:
    path = Path(target).expanduser()
    if not path.is_absolute():
        path = (base or Path.cwd()) / path
    path = path.resolve()
    if not path.is_file():
        raise FeatureError(f"feature set {fs.name!r}: transform file {path} does not exist")
    # one module per file, named after its path, so two specs' 'transforms.py' never collide
    name = f"lockstep_transform_{hashlib.sha256(str(path).encode()).hexdigest()[:12]}_{path.stem}"
    cached = sys.modules.get(name)
    if cached is not None:
        return cached
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise FeatureError(f"feature set {fs.name!r}: cannot load {path}")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))  # its own imports of neighbouring modules
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise FeatureError(f"feature set {fs.name!r}: loading {path} failed: {type(exc).__name__}: {exc}") from None
    return module


def pinned_version_problem(frame: pl.LazyFrame, pinned: str) -> str | None:
    """Why ``frame`` (a certified interval) is not what a consumer pinned to feature version
    ``pinned`` may read (None: it is)."""
    if "feature_version" not in frame.collect_schema().names():
        return "the table has no feature_version column"
    found = sorted(frame.select(pl.col("feature_version").cast(pl.String).unique()).collect()
                   .to_series().drop_nulls().to_list())
    return None if not found or found == [pinned] else f"holds {found}"
