"""A native polars executor for the expectation types Lockstep's suites use.

Every supported expectation becomes a few aggregate expressions; all of a suite's
expressions run in **one** ``select`` over the frame, so polars scans each column once and
shares work between them. Results are GX-format ``ExpectationValidationResult`` dicts and
honour GX's semantics (held to GX by differential tests):

* column map expectations ignore missing values (null, and NaN as pandas sees it), except
  ``not_be_null`` / ``be_null``; ``mostly`` is the share of non-missing values that must pass;
  no value at all passes;
* ``strict_min`` / ``strict_max`` make bounds exclusive; a missing bound is open;
* aggregate expectations report ``observed_value``; no observation fails.

:func:`unexpected_rows` gives the row mask of a row-level expectation, which is what the
quarantine policy moves aside.
"""

from __future__ import annotations

import math
from typing import Any

import polars as pl

from pipelines.validation.suites import ROW_LEVEL, Expectation

PARTIAL = 20

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


def supports(e: Expectation) -> bool:
    return e.type in SUPPORTED


def _missing(frame: pl.DataFrame | pl.LazyFrame, column: str) -> pl.Expr:
    """Missing as pandas sees it: null, or NaN in a float column."""
    schema = frame.collect_schema() if isinstance(frame, pl.LazyFrame) else frame.schema
    col = pl.col(column)
    return (col.is_null() | col.is_nan()) if schema[column].is_float() else col.is_null()


def _within(value: pl.Expr, kw: dict[str, Any]) -> pl.Expr:
    ok = pl.lit(True)
    lo, hi = kw.get("min_value"), kw.get("max_value")
    if lo is not None:
        ok = ok & ((value > lo) if kw.get("strict_min") else (value >= lo))
    if hi is not None:
        ok = ok & ((value < hi) if kw.get("strict_max") else (value <= hi))
    return ok


def unexpected_rows(frame: pl.DataFrame | pl.LazyFrame, e: Expectation) -> pl.Expr:
    """True for the rows a row-level expectation rejects (missing values never count,
    except for the null expectations themselves)."""
    kw = e.kwargs
    if e.type == "expect_compound_columns_to_be_unique":
        cols = list(kw["column_list"])
        all_missing = pl.all_horizontal([pl.col(c).is_null() for c in cols])
        return pl.struct(cols).is_duplicated() & ~all_missing
    column = kw["column"]
    missing = _missing(frame, column)
    if e.type == "expect_column_values_to_not_be_null":
        return missing
    if e.type == "expect_column_values_to_be_null":
        return ~missing
    col = pl.col(column)
    if e.type == "expect_column_values_to_be_unique":
        bad = pl.when(missing).then(None).otherwise(col).is_duplicated()
    elif e.type == "expect_column_values_to_be_between":
        bad = ~_within(col, kw)
    elif e.type == "expect_column_values_to_be_in_set":
        bad = ~col.is_in(list(kw["value_set"]))
    elif e.type == "expect_column_values_to_not_be_in_set":
        bad = col.is_in(list(kw["value_set"]))
    elif e.type == "expect_column_values_to_match_regex":
        bad = ~col.cast(pl.String).str.contains(kw["regex"])
    elif e.type == "expect_column_values_to_not_match_regex":
        bad = col.cast(pl.String).str.contains(kw["regex"])
    elif e.type == "expect_column_value_lengths_to_be_between":
        bad = ~_within(col.cast(pl.String).str.len_chars(), kw)
    else:  # pragma: no cover - guarded by supports()
        raise ValueError(e.type)
    return bad.fill_null(False) & ~missing


def _nearest_quantile(value: pl.Expr, q: float) -> pl.Expr:
    """pandas' ``interpolation="nearest"`` (what GX uses): the sorted value at position
    q * (n - 1), halves rounded to even - polars' own "nearest" rounds halves up."""
    present = value.drop_nulls().sort()
    x = pl.lit(q, pl.Float64) * (present.len() - 1)
    f = x.floor()
    frac = x - f
    idx = f + (frac > 0.5).cast(pl.Float64) + ((frac == 0.5) & (f % 2 == 1)).cast(pl.Float64)
    return present.get(idx.cast(pl.Int64).clip(0, None), null_on_oob=True)


def _agg_exprs(frame: pl.DataFrame, e: Expectation, tag: str) -> list[pl.Expr]:
    kw = e.kwargs
    if e.type == "expect_table_row_count_to_be_between":
        return [pl.len().alias(tag)]
    if e.type in ("expect_column_values_to_be_of_type", "expect_column_to_exist"):
        return []
    column = kw["column"]
    value = pl.when(_missing(frame, column)).then(None).otherwise(pl.col(column))
    if e.type == "expect_column_mean_to_be_between":
        return [value.mean().alias(tag)]
    if e.type == "expect_column_median_to_be_between":
        return [value.median().alias(tag)]
    if e.type == "expect_column_min_to_be_between":
        return [value.min().alias(tag)]
    if e.type == "expect_column_max_to_be_between":
        return [value.max().alias(tag)]
    if e.type == "expect_column_stdev_to_be_between":
        return [value.std(ddof=1).alias(tag)]
    if e.type == "expect_column_quantile_values_to_be_between":
        qs = kw["quantile_ranges"]["quantiles"]
        return [_nearest_quantile(value, q).alias(f"{tag}_{i}") for i, q in enumerate(qs)]
    if e.type == "expect_column_distinct_values_to_be_in_set":
        return [value.drop_nulls().unique().sort().implode().alias(tag)]
    raise ValueError(e.type)  # pragma: no cover


def _map_exprs(frame: pl.DataFrame, e: Expectation, tag: str) -> list[pl.Expr]:
    bad = unexpected_rows(frame, e)
    if e.type == "expect_compound_columns_to_be_unique":
        missing = pl.all_horizontal([pl.col(c).is_null() for c in e.kwargs["column_list"]])
    else:
        missing = _missing(frame, e.kwargs["column"])
    return [bad.sum().alias(f"{tag}_bad"), missing.sum().alias(f"{tag}_missing")]


def _result(e: Expectation, success: bool, result: dict[str, Any]) -> dict[str, Any]:
    return {
        "success": bool(success),
        "expectation_config": {"type": e.type, "kwargs": e.kwargs, "meta": e.meta},
        "result": result,
        "meta": {"engine": "polars"},
        "exception_info": {"raised_exception": False, "exception_traceback": None, "exception_message": None},
    }


def _observed_ok(value: Any, kw: dict[str, Any]) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    lo, hi = kw.get("min_value"), kw.get("max_value")
    if lo is not None and (value <= lo if kw.get("strict_min") else value < lo):
        return False
    return not (hi is not None and (value >= hi if kw.get("strict_max") else value > hi))


def validate(frame: pl.DataFrame, expectations: list[Expectation]) -> list[dict[str, Any]]:
    """Run supported expectations over ``frame`` in one pass; GX-format results, in order."""
    exprs: list[pl.Expr] = []
    for e in expectations:
        tag = f"e{e.index}"
        exprs += _map_exprs(frame, e, tag) if e.type in MAP_TYPES else _agg_exprs(frame, e, tag)
    row = frame.select(exprs).row(0, named=True) if exprs else {}
    n = frame.height
    out = []
    for e in expectations:
        tag, kw = f"e{e.index}", e.kwargs
        if e.type in MAP_TYPES:
            bad, missing = int(row[f"{tag}_bad"]), int(row[f"{tag}_missing"])
            nulls_themselves = e.type in ("expect_column_values_to_not_be_null", "expect_column_values_to_be_null")
            base = n if nulls_themselves else n - missing
            mostly = kw.get("mostly", 1.0)
            success = base == 0 or (base - bad) / base >= mostly
            partial: list[Any] = []
            if bad and not nulls_themselves:
                col = kw.get("column")
                if col is not None:
                    partial = frame.filter(unexpected_rows(frame, e)).get_column(col).head(PARTIAL).to_list()
            result = {
                "element_count": n,
                "unexpected_count": bad,
                "unexpected_percent": (100.0 * bad / base) if base else 0.0,
                "partial_unexpected_list": partial,
            }
            if not nulls_themselves:
                result.update(missing_count=missing, missing_percent=(100.0 * missing / n) if n else None,
                              unexpected_percent_total=(100.0 * bad / n) if n else None,
                              unexpected_percent_nonmissing=(100.0 * bad / base) if base else None)
            out.append(_result(e, success, result))
        elif e.type == "expect_column_to_exist":
            out.append(_result(e, kw["column"] in frame.columns, {}))
        elif e.type == "expect_column_values_to_be_of_type":
            # GX compares the pandas dtype name of the frame it is handed; accept polars' too
            dtype = str(frame.select(kw["column"]).head(0).to_pandas().dtypes.iloc[0])
            ok = str(kw["type_"]) in (dtype, str(frame.schema[kw["column"]]))
            out.append(_result(e, ok, {"observed_value": dtype}))
        elif e.type == "expect_column_quantile_values_to_be_between":
            qr = kw["quantile_ranges"]
            values = [row[f"{tag}_{i}"] for i in range(len(qr["quantiles"]))]
            ok = all(_observed_ok(v, {"min_value": lo, "max_value": hi}) for v, (lo, hi) in zip(values, qr["value_ranges"], strict=True))
            out.append(_result(e, ok, {"observed_value": {"quantiles": qr["quantiles"], "values": values}}))
        elif e.type == "expect_column_distinct_values_to_be_in_set":
            distinct = row[tag] or []
            allowed = set(kw["value_set"] or [])
            out.append(_result(e, all(v in allowed for v in distinct), {"observed_value": distinct}))
        else:
            observed = row[tag]
            out.append(_result(e, _observed_ok(observed, kw), {"observed_value": observed}))
    return out
