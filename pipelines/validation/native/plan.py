"""What the native executor runs, and how it sees a column: the plan's building blocks.

An expectation runs natively only when its type, its kwargs (suite parameters resolved by GX's
own parser), its column's dtype and its arguments' types fall in the cases reproduced exactly;
anything else raises :class:`NotNative` with the reason. A column is seen as GX's pandas engine
sees it (:class:`_Col`): an integer column with nulls is float64, NaN is missing. A plan
(:class:`_Plan`) is a few aggregate expressions and the function that turns their values
into a GX result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import polars as pl

from pipelines.validation.conditions import NotNativeCondition, condition_mask
from pipelines.validation.gx import import_gx
from pipelines.validation.suites import ROW_LEVEL, Expectation

PARTIAL = 20


#: polars' in-memory engine: its streaming engine (the default) runs top-k and several of
#: these aggregates per batch, orders of magnitude slower on a whole frame already in memory
ENGINE: Literal["in-memory"] = "in-memory"


#: value sets up to this size are tested by equalities (no hash of every row)
SMALL_SET = 16


#: rows sampled to decide whether a string column has few distinct values
SAMPLE = 4096


FLOAT_EXACT = 2**53


MAP_TYPES = ROW_LEVEL


AGG_TYPES = {
    "expect_table_row_count_to_be_between",
    "expect_column_mean_to_be_between",
    "expect_column_median_to_be_between",
    "expect_column_min_to_be_between",
    "expect_column_max_to_be_between",
    "expect_column_stdev_to_be_between",
    "expect_column_quantile_values_to_be_between",
    "expect_column_distinct_values_to_be_in_set",
    "expect_column_values_to_be_of_type",
    "expect_column_to_exist",
}


SUPPORTED = MAP_TYPES | AGG_TYPES


NULL_TYPES = {"expect_column_values_to_not_be_null", "expect_column_values_to_be_null"}


#: kwargs with no effect on a result inside a suite run (GX ignores them there too)
INERT = {"result_format", "catch_exceptions", "batch_id"}


BOUNDS = {"min_value", "max_value", "strict_min", "strict_max"}


KWARGS: dict[str, set[str]] = {
    "expect_column_values_to_not_be_null": {"column", "mostly"},
    "expect_column_values_to_be_null": {"column", "mostly"},
    "expect_column_values_to_be_unique": {"column", "mostly"},
    "expect_compound_columns_to_be_unique": {"column_list", "mostly", "ignore_row_if"},
    "expect_column_values_to_be_between": {"column", "mostly"} | BOUNDS,
    "expect_column_values_to_be_in_set": {"column", "mostly", "value_set"},
    "expect_column_values_to_not_be_in_set": {"column", "mostly", "value_set"},
    "expect_column_values_to_match_regex": {"column", "mostly", "regex"},
    "expect_column_values_to_not_match_regex": {"column", "mostly", "regex"},
    "expect_column_values_to_match_regex_list": {"column", "mostly", "regex_list", "match_on"},
    "expect_column_values_to_not_match_regex_list": {"column", "mostly", "regex_list"},
    "expect_column_value_lengths_to_be_between": {"column", "mostly"} | BOUNDS,
    "expect_table_row_count_to_be_between": BOUNDS,
    "expect_column_mean_to_be_between": {"column"} | BOUNDS,
    "expect_column_median_to_be_between": {"column"} | BOUNDS,
    "expect_column_min_to_be_between": {"column"} | BOUNDS,
    "expect_column_max_to_be_between": {"column"} | BOUNDS,
    "expect_column_stdev_to_be_between": {"column"} | BOUNDS,
    "expect_column_quantile_values_to_be_between": {"column", "quantile_ranges", "allow_relative_error"},
    "expect_column_distinct_values_to_be_in_set": {"column", "value_set"},
    "expect_column_values_to_be_of_type": {"column", "type_"},
    "expect_column_to_exist": {"column", "column_index"},
}


class NotNative(Exception):  # noqa: N818 - a routing signal, not an error
    """This expectation, on this frame, is not one the native executor reproduces exactly."""


def supports(e: Expectation) -> bool:
    """Whether the expectation's type has a native implementation (a given frame or kwarg
    may still route it to GX: see :class:`NotNative`)."""
    return e.type in SUPPORTED


INT = "int"


FLOAT = "float"


STR = "str"


OTHER = "other"


@dataclass(frozen=True)
class _Col:
    name: str
    kind: str  # int / float / str / other, as pandas sees it (int with nulls is float)
    dtype: pl.DataType
    int_view_float: bool  # an integer column with nulls: pandas holds it as float64

    @property
    def raw(self) -> pl.Expr:
        return pl.col(self.name)

    @property
    def value(self) -> pl.Expr:
        """The values as pandas holds them; missing ones (null, NaN) as null."""
        c = pl.col(self.name)
        if self.kind == FLOAT:
            return c.cast(pl.Float64).fill_nan(None)
        return c

    @property
    def missing(self) -> pl.Expr:
        c = pl.col(self.name)
        return (c.is_null() | c.is_nan()) if self.dtype.is_float() else c.is_null()


def _col(frame: pl.DataFrame, name: Any) -> _Col:
    if not isinstance(name, str) or name not in frame.columns:
        raise NotNative(f"column {name!r} is not in the frame")
    s = frame.get_column(name)
    dt = s.dtype
    if dt.is_integer():
        nulls = s.null_count() > 0
        return _Col(name, FLOAT if nulls else INT, dt, nulls)
    if dt.is_float():
        return _Col(name, FLOAT, dt, False)
    if dt == pl.String:
        return _Col(name, STR, dt, False)
    return _Col(name, OTHER, dt, False)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _need(cond: bool, reason: str) -> None:
    if not cond:
        raise NotNative(reason)


@dataclass
class _Plan:
    exprs: list[pl.Expr]
    finish: Callable[[dict[str, Any]], dict[str, Any]]  # the select's row -> {"success", "result"}


def _resolve(e: Expectation) -> dict[str, Any]:
    kw = dict(e.kwargs)
    unknown = set(kw) - KWARGS[e.type] - INERT - {"row_condition", "condition_parser"}
    _need(not unknown, f"kwargs {sorted(unknown)} are not run natively")
    if any(isinstance(v, dict) and "$PARAMETER" in v for v in kw.values()):
        import_gx()
        from great_expectations.core.suite_parameters import build_suite_parameters

        try:
            kw, _ = build_suite_parameters(kw, {})
        except Exception as exc:
            raise NotNative(f"suite parameter: {exc}") from None
    for k in BOUNDS & set(kw):
        v = kw[k]
        if k.startswith("strict"):
            _need(v is None or isinstance(v, bool), f"{k} must be a boolean")
        else:
            _need(v is None or _number(v), f"{k} {v!r} is not a number")
    return kw


def _within(value: pl.Expr, kw: dict[str, Any]) -> pl.Expr:
    ok = pl.lit(True)
    lo, hi = kw.get("min_value"), kw.get("max_value")
    if lo is not None:
        ok = ok & ((value > lo) if kw.get("strict_min") else (value >= lo))
    if hi is not None:
        ok = ok & ((value < hi) if kw.get("strict_max") else (value <= hi))
    return ok


def _numeric_view(c: _Col, kw: dict[str, Any]) -> pl.Expr:
    """Values to compare with bounds: float64 unless an int column meets int bounds."""
    _need(c.kind in (INT, FLOAT), f"column {c.name!r} ({c.dtype}) is not numeric as pandas sees it")
    bounds = [kw.get("min_value"), kw.get("max_value")]
    if c.kind == INT and all(b is None or isinstance(b, int) for b in bounds):
        return c.raw
    return c.raw.cast(pl.Float64)


def _missing_as_pandas(c: _Col, v: Any) -> Any:
    """A missing value as pandas hands it to GX: a fresh NaN per float (so no two are equal
    in GX's counts), numpy's one NaN object in a string column, None elsewhere."""
    if v is not None:
        return v
    if c.kind == FLOAT:
        return float("nan")
    if c.kind == STR:
        import numpy as np

        return np.nan
    return None


def conditioned(frame: pl.DataFrame, kw: dict[str, Any]) -> tuple[pl.DataFrame, list[int]]:
    """The rows GX's ``row_condition`` keeps, with their positions in ``frame``; an integer
    column with nulls anywhere in ``frame`` stays float64 (pandas keeps a filtered column's
    dtype), so the rows kept are seen exactly as GX sees them."""
    try:
        mask = condition_mask(frame, kw)
    except NotNativeCondition as exc:
        raise NotNative(str(exc)) from None
    floats = [n for n, dt in frame.schema.items() if dt.is_integer() and frame.get_column(n).null_count()]
    kept = frame.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias("__lockstep_pos")).filter(mask)
    positions = kept.get_column("__lockstep_pos").to_list()
    return kept.drop("__lockstep_pos").with_columns([pl.col(n).cast(pl.Float64) for n in floats]), positions
