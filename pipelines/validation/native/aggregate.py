"""Aggregate expectations: row count, mean, median, min, max, stdev, quantiles, distinct
values, column type and existence, each an observed value judged against its bounds as GX
does (a float32 observation in float32; quantiles at the ranks numpy's method picks).
"""

from __future__ import annotations

import math
from typing import Any

import polars as pl

from pipelines.validation.gx import import_gx
from pipelines.validation.native.plan import (
    FLOAT,
    INT,
    STR,
    NotNative,
    _Col,
    _col,
    _need,
    _number,
    _Plan,
)
from pipelines.validation.native.strings import candidates, covers
from pipelines.validation.suites import Expectation


def _observed_ok(value: Any, kw: dict[str, Any]) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    lo, hi = kw.get("min_value"), kw.get("max_value")
    if lo is not None and (value <= lo if kw.get("strict_min") else value < lo):
        return False
    return not (hi is not None and (value >= hi if kw.get("strict_max") else value > hi))


def _ok(c: _Col, value: Any, kw: dict[str, Any]) -> bool:
    """``_observed_ok`` as numpy compares: a float32 observation against its bounds in float32."""
    if c.dtype != pl.Float32 or value is None:
        return _observed_ok(value, kw)
    import numpy as np

    f32 = {k: (np.float32(v) if k in ("min_value", "max_value") and v is not None else v) for k, v in kw.items()}
    return _observed_ok(np.float32(value), f32)


def _quantile_ok(value: Any, lo: Any, hi: Any) -> bool:
    """GX's rule for one observed quantile: inside [lo, hi] (None: unbounded), or within a
    relative 1e-4 of either bound (numpy's ``isclose``, as GX calls it); no quantile (an empty
    column) is never in range."""
    if value is None:
        return False
    import numpy as np

    low, high = -math.inf if lo is None else lo, math.inf if hi is None else hi
    v = np.float64(value)
    return bool(np.isclose(v, np.float64(low), rtol=1e-4, atol=1e-8)
                or np.isclose(v, np.float64(high), rtol=1e-4, atol=1e-8) or low <= value <= high)


def _as_pandas_number(c: _Col, v: Any) -> Any:
    return float(v) if v is not None and c.kind == FLOAT else v


def _present_count(frame: pl.DataFrame, c: _Col) -> int:
    """How many values pandas sees as present (not null, not NaN)."""
    s = frame.get_column(c.name)
    missing = s.null_count() + (int(s.is_nan().sum()) if c.dtype.is_float() else 0)
    return s.len() - missing


def _ranked(c: _Col, n: int, k: int) -> pl.Expr:
    """The k-th smallest present value (0-based) of ``n``, by selection rather than a sort
    (polars' top-k is a partial sort: linear, no full sorted copy); null when ``n == 0``."""
    present = c.value.drop_nulls()
    if n == 0:
        return present.max()
    return present.bottom_k(k + 1).max() if k < n // 2 else present.top_k(n - k).min()


def _ranks(n: int, qs: list[float], method: str) -> list[int]:
    """The positions in the sorted values numpy's ``quantile(method=...)`` (what pandas and
    so GX call) picks for ``qs`` over ``n`` values: numpy's own index function for the method
    (its ``_QuantileMethods`` table: the rank is the "virtual index" numpy takes), else numpy's
    quantile run on ``0..n-1`` so the value it returns is the index itself (O(n))."""
    import numpy as np

    if n == 0:
        return [0 for _ in qs]
    quantiles = np.asarray(qs, dtype=np.float64)
    try:
        from numpy.lib._function_base_impl import _QuantileMethods  # type: ignore[attr-defined]

        picked = np.asanyarray(_QuantileMethods[method]["get_virtual_index"](n, quantiles))
        if not np.issubdtype(picked.dtype, np.integer):
            raise TypeError(picked.dtype)
    except (ImportError, KeyError, TypeError):
        picked = np.quantile(np.arange(n, dtype=np.float64), quantiles, method=method)  # type: ignore[call-overload]  # method is one of numpy's names
    return [int(i) for i in np.atleast_1d(picked)]


def _median(c: _Col, n: int) -> pl.Expr:
    """pandas' median: the mean of the two middle values, in float64."""
    lo = _ranked(c, n, (n - 1) // 2).cast(pl.Float64)
    hi = lo if n % 2 else _ranked(c, n, n // 2).cast(pl.Float64)
    return (lo + hi) / 2


def _agg_plan(frame: pl.DataFrame, e: Expectation, kw: dict[str, Any], tag: str) -> _Plan:
    t = e.type
    if t == "expect_table_row_count_to_be_between":
        return _Plan([pl.len().alias(tag)], lambda row: {"success": _observed_ok(int(row[tag]), kw),
                                                         "result": {"observed_value": int(row[tag])}})
    if t == "expect_column_to_exist":
        col, index = kw.get("column"), kw.get("column_index")
        _need(index is None or (isinstance(index, int) and not isinstance(index, bool)), "column_index is not an int")
        if index:  # GX reads a column_index of 0 as "no index"
            try:
                ok = frame.columns[index] == col
            except IndexError:
                ok = False
        else:
            ok = col in frame.columns
        return _Plan([], lambda row: {"success": ok, "result": {}})
    c = _col(frame, kw.get("column"))
    if t == "expect_column_values_to_be_of_type":
        return _of_type_plan(frame, c, kw)
    if t == "expect_column_distinct_values_to_be_in_set":
        return _distinct_plan(frame, c, kw, tag)
    _need(c.kind in (INT, FLOAT), f"column {c.name!r} ({c.dtype}) is not numeric as pandas sees it")
    if t == "expect_column_quantile_values_to_be_between":
        qr = kw["quantile_ranges"]
        qs = qr["quantiles"]
        _need(all(_number(q) for q in qs), "quantiles are not numbers")
        for lo, hi in qr["value_ranges"]:
            _need((lo is None or _number(lo)) and (hi is None or _number(hi)), "value ranges are not numbers")
        method = kw.get("allow_relative_error") or "nearest"
        _need(method in ("nearest", "lower", "higher"), f"allow_relative_error {method!r} runs on GX")
        n = _present_count(frame, c)
        exprs = [_ranked(c, n, k).alias(f"{tag}_{i}") for i, k in enumerate(_ranks(n, [float(q) for q in qs], method))]

        def finish_q(row: dict[str, Any]) -> dict[str, Any]:
            values = [_as_pandas_number(c, row[f"{tag}_{i}"]) for i in range(len(qs))]
            details = [_quantile_ok(v, lo, hi) for v, (lo, hi) in zip(values, qr["value_ranges"], strict=True)]
            return {"success": all(details), "result": {"observed_value": {"quantiles": qs, "values": values},
                                                        "details": {"success_details": details}}}

        return _Plan(exprs, finish_q)
    v = c.value.cast(pl.Float64) if c.kind == FLOAT else c.value
    if t in ("expect_column_mean_to_be_between", "expect_column_stdev_to_be_between"):
        # pandas' own reductions over the column as pandas holds it (zero-copy where polars
        # allows): its summation order decides ill-conditioned sums, float32 stays float32
        def finish_moment(row: dict[str, Any]) -> dict[str, Any]:
            import pandas as pd

            arr = frame.get_column(c.name).to_numpy()
            series = pd.Series(arr, copy=False)
            observed = series.mean() if t == "expect_column_mean_to_be_between" else series.std()
            observed = None if pd.isna(observed) else observed
            return {"success": _ok(c, observed, kw), "result": {"observed_value": observed}}

        return _Plan([], finish_moment)
    if t == "expect_column_median_to_be_between":
        expr = _median(c, _present_count(frame, c))
    elif t == "expect_column_min_to_be_between":
        expr = v.min()
    elif t == "expect_column_max_to_be_between":
        expr = v.max()
    else:  # pragma: no cover
        raise NotNative(t)

    def finish(row: dict[str, Any]) -> dict[str, Any]:
        observed = row[tag]
        if t in ("expect_column_min_to_be_between", "expect_column_max_to_be_between"):
            observed = _as_pandas_number(c, observed)
        if isinstance(observed, float) and math.isnan(observed):
            observed = None
        return {"success": _ok(c, observed, kw), "result": {"observed_value": observed}}

    return _Plan([expr.alias(tag)], finish)


def _distinct_plan(frame: pl.DataFrame, c: _Col, kw: dict[str, Any], tag: str) -> _Plan:
    _need(c.kind in (INT, FLOAT, STR), f"column {c.name!r} ({c.dtype}) is not run natively")
    value_set = kw.get("value_set")
    _need(isinstance(value_set, list), "value_set is not a list")
    v = c.value.cast(pl.Float64) if c.kind == FLOAT else c.value
    # a string column whose first rows hold few values: they are all its values when every
    # row equals one of them (equalities, no hash of every row); else its distinct values
    seen = candidates(frame, c)
    distinct = v.drop_nulls().unique(maintain_order=True).implode()

    def finish(row: dict[str, Any]) -> dict[str, Any]:
        import_gx()
        from great_expectations.constants import MAX_DISTINCT_VALUES

        if seen is None:
            column_set = set(row[tag] or [])
        elif row[tag]:
            column_set = set(seen.to_list())
        else:
            column_set = set(frame.select(distinct).item().to_list())
        not_in = list(column_set - set(value_set or []))
        try:
            not_in = sorted(not_in)
        except TypeError:
            not_in = sorted(not_in, key=str)
        return {"success": not not_in, "result": {"observed_value": None, "unexpected_count": len(not_in),
                                                  "partial_unexpected_list": not_in[:MAX_DISTINCT_VALUES]}}

    return _Plan([(distinct if seen is None else covers(c, seen)).alias(tag)], finish)


def _of_type_plan(frame: pl.DataFrame, c: _Col, kw: dict[str, Any]) -> _Plan:
    """GX's own rule (``_validate_pandas``) over the dtype pandas gives the whole column."""
    type_ = kw.get("type_")
    sample = frame.select(c.name)
    nulls = sample.filter(pl.col(c.name).is_null()).head(1)
    dtype = (nulls if nulls.height else sample.head(1)).to_pandas().dtypes.iloc[0]
    _need(getattr(dtype.type, "__name__", "") not in ("object_", "str"),
          "GX checks every value of an object/string column; runs on GX")
    import_gx()
    from great_expectations.expectations.core.expect_column_values_to_be_of_type import (
        ExpectColumnValuesToBeOfType,
    )

    _need(isinstance(type_, str), "type_ is not a string")
    out = ExpectColumnValuesToBeOfType(column=c.name, type_=str(type_))._validate_pandas(dtype, type_)
    return _Plan([], lambda row: dict(out))
