"""Row-level (map) expectations: nulls, uniqueness, bounds, sets, regexes and lengths per row.

Each becomes a mask of the rows it rejects (:func:`unexpected_rows`, what the quarantine
policy moves aside) and a count in the executor's one ``select``; the result is shaped by GX's
own ``_format_map_output`` with the first unexpected values as pandas holds them.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import polars as pl

from pipelines.validation.conditions import has_condition
from pipelines.validation.gx import import_gx
from pipelines.validation.native.plan import (
    FLOAT,
    FLOAT_EXACT,
    INT,
    MAP_TYPES,
    NULL_TYPES,
    OTHER,
    PARTIAL,
    SMALL_SET,
    STR,
    NotNative,
    _Col,
    _col,
    _missing_as_pandas,
    _need,
    _number,
    _numeric_view,
    _Plan,
    _resolve,
    _within,
    conditioned,
)
from pipelines.validation.native.strings import STRING_TYPES, StringTest, string_test
from pipelines.validation.suites import Expectation


def _set_values(c: _Col, values: Any) -> list[Any]:
    _need(isinstance(values, list), "value_set is not a list")
    if c.kind == STR:
        _need(all(isinstance(v, str) for v in values), "value_set mixes types with a string column")
        return list(values)
    _need(c.kind in (INT, FLOAT), f"column {c.name!r} ({c.dtype}) is not run natively for value sets")
    _need(all(_number(v) for v in values), "value_set is not all numbers")
    if c.kind == INT:
        _need(all(isinstance(v, int) for v in values), "float values in an integer column's value set")
        return list(values)
    _need(all(not (isinstance(v, float) and math.isnan(v)) for v in values), "NaN in value_set")
    _need(all(abs(v) <= FLOAT_EXACT for v in values if isinstance(v, int)), "integer beyond float precision")
    return [float(v) + 0.0 for v in values]


HASH_SEED = 0x10C57E9


def _unique_view(c: _Col) -> pl.Expr:
    """Values as pandas' ``duplicated()`` compares them: NaN is missing, -0.0 equals 0.0."""
    _need(c.kind in (INT, FLOAT, STR), f"column {c.name!r} ({c.dtype}) is not run natively")
    return (c.value + 0.0) if c.kind == FLOAT else c.value


def _strictly_monotonic(frame: pl.DataFrame, c: _Col) -> pl.Expr:
    """True when the present values strictly increase or strictly decrease: then no two are
    equal, which one comparison per row proves (ids generated in order are the usual case).
    A column with no missing value is compared with itself shifted by one row as two
    zero-copy slices, in the one direction its first two rows show."""
    v = _unique_view(c)
    s = frame.get_column(c.name)
    n = s.len()
    if c.kind in (INT, STR) and n >= 2 and not s.null_count():
        head, tail = v.slice(0, n - 1), v.slice(1, n - 1)
        return (tail > head).all() if s[1] > s[0] else (tail < head).all()
    present = v.drop_nulls()
    prev = present.shift(1)
    return (present > prev).all() | (present < prev).all()


def _duplicated_count(frame: pl.DataFrame, c: _Col) -> int:
    """How many present values occur more than once: values whose 64-bit hash is unique are
    unique; only the colliding ones are compared by value."""
    present = _unique_view(c).drop_nulls()
    if c.kind != STR:
        return int(frame.select(present.is_duplicated().sum()).item())
    cand = present.filter(present.hash(HASH_SEED).is_duplicated())
    return int(frame.select(cand.is_duplicated().sum()).item())


def _bad_expr(frame: pl.DataFrame, e: Expectation, kw: dict[str, Any]) -> tuple[pl.Expr, pl.Expr | None]:
    """(rows the expectation rejects, rows it does not consider) - the second is None for
    the null expectations, which consider every row."""
    bad, out, test = _rejected(frame, e, kw)
    if test is not None:
        c = test.c
        return test.exact().mask & ~c.missing, out
    return bad, out


def _rejected(frame: pl.DataFrame, e: Expectation,
              kw: dict[str, Any]) -> tuple[pl.Expr, pl.Expr | None, StringTest | None]:
    """:func:`_bad_expr`, except that a string expectation's rows come as its
    :class:`StringTest` (its mask exact only when its guard holds)."""
    if e.type == "expect_compound_columns_to_be_unique":
        cols = [_col(frame, n) for n in kw["column_list"]]
        for c in cols:
            _need(c.kind in (INT, FLOAT, STR), f"column {c.name!r} ({c.dtype}) is not run natively")
        how = kw.get("ignore_row_if") or "all_values_are_missing"
        _need(how in ("all_values_are_missing", "any_value_is_missing", "never"), f"ignore_row_if {how!r}")
        miss = [c.missing for c in cols]
        ignored = (pl.all_horizontal(miss) if how == "all_values_are_missing"
                   else pl.any_horizontal(miss) if how == "any_value_is_missing" else pl.lit(False))
        # pandas' duplicated(): NaN equals NaN and null (one missing value), -0.0 equals 0.0
        keys = [(c.value + 0.0) if c.kind == FLOAT else c.value for c in cols]
        struct = pl.when(ignored).then(None).otherwise(pl.struct(keys))
        bad = struct.is_duplicated() & ~ignored
        return bad, ignored, None
    c = _col(frame, kw.get("column"))
    if e.type in NULL_TYPES:
        native_dtype = c.kind in (INT, FLOAT, STR) or c.dtype in (pl.Boolean, pl.Date) or isinstance(c.dtype, pl.Datetime)
        _need(native_dtype and (c.kind != OTHER or e.type.endswith("not_be_null")),
              f"column {c.name!r} ({c.dtype}) is not run natively")
        return (c.missing if e.type.endswith("not_be_null") else ~c.missing), None, None
    if e.type == "expect_column_values_to_be_unique":
        v = _unique_view(c)
        if c.kind == STR:  # hash first (cheap); compare the strings only where hashes collide
            cand = v.hash(HASH_SEED).is_duplicated() & ~c.missing
            bad = cand & pl.when(cand).then(v).is_duplicated()
        else:
            bad = v.is_duplicated() & ~c.missing
    elif e.type == "expect_column_values_to_be_between":
        bad = ~_within(_numeric_view(c, kw), kw)
    elif e.type in ("expect_column_values_to_be_in_set", "expect_column_values_to_not_be_in_set"):
        values = _set_values(c, kw.get("value_set"))
        v = c.raw.cast(pl.Float64) + 0.0 if c.kind == FLOAT else c.raw
        if len(values) <= SMALL_SET:  # a few equalities beat hashing every row
            inside = functools.reduce(lambda a, b: a | b, [v == pl.lit(x) for x in values], pl.lit(False))
        else:
            inside = v.is_in(pl.Series(values, dtype=pl.Float64 if c.kind == FLOAT else c.dtype))
        bad = inside if e.type == "expect_column_values_to_not_be_in_set" else ~inside
    elif e.type in STRING_TYPES:
        test = string_test(frame, c, e.type, kw)
        return test.mask & ~c.missing, c.missing, test
    else:  # pragma: no cover - guarded by supports()
        raise NotNative(e.type)
    return bad.fill_null(False) & ~c.missing, c.missing, None


def unexpected_rows(frame: pl.DataFrame | pl.LazyFrame, e: Expectation) -> pl.Expr:
    """True for the rows a row-level expectation rejects (missing values never count,
    except for the null expectations themselves). Raises :class:`NotNative` when the
    expectation is not one the native executor runs on this frame."""
    df = frame if isinstance(frame, pl.DataFrame) else frame.collect()
    _need(e.type in MAP_TYPES, f"{e.type} is not a row-level expectation")
    try:
        if not has_condition(e.kwargs):
            return _bad_expr(df, e, _resolve(e))[0]
        sub, positions = conditioned(df, e.kwargs)  # judged among the rows the condition keeps
        flags = sub.select(_bad_expr(sub, e, _resolve(e))[0].alias("__bad")).get_column("__bad")
        rejected = [p for p, bad in zip(positions, flags.to_list(), strict=True) if bad]
        return pl.int_range(pl.len(), dtype=pl.Int64).is_in(pl.Series(rejected, dtype=pl.Int64))
    except NotNative:  # the rows GX itself rejects
        from pipelines.validation import gx_engine

        index = gx_engine.unexpected_index(df, e)
        return pl.int_range(pl.len(), dtype=pl.Int64).is_in(pl.Series(index, dtype=pl.Int64))


@functools.cache
def _summary() -> dict[str, Any]:
    import_gx()
    from great_expectations.expectations.expectation_configuration import parse_result_format

    return dict(parse_result_format("SUMMARY"))


def _map_plan(frame: pl.DataFrame, e: Expectation, kw: dict[str, Any], tag: str,
              positions: list[int] | None = None) -> _Plan:
    bad, considered_out, test = _rejected(frame, e, kw)
    unique_col = _col(frame, kw["column"]) if e.type == "expect_column_values_to_be_unique" else None
    # uniqueness is proven first by one comparison per row; counted only when that fails
    if unique_col is not None:
        exprs = [_strictly_monotonic(frame, unique_col).alias(f"{tag}_bad")]
    else:
        exprs = [x.alias(f"{tag}_bad{i}") for i, x in enumerate(test.counts if test else [bad.sum()])]
    n_parts = len(exprs)
    if test is not None and test.guard is not None:
        exprs.append(test.guard.alias(f"{tag}_guard"))
    if considered_out is not None:
        exprs.append(considered_out.sum().alias(f"{tag}_out"))
    mostly = kw.get("mostly")
    mostly = 1.0 if mostly is None else float(mostly)
    n = frame.height

    def finish(row: dict[str, Any]) -> dict[str, Any]:
        import_gx()
        from great_expectations.expectations.expectation import _format_map_output, _mostly_success

        rejected = bad
        if unique_col is not None:
            unexpected = 0 if row[f"{tag}_bad"] else _duplicated_count(frame, unique_col)
        elif test is not None and test.guard is not None and not row[f"{tag}_guard"]:
            # a value the first rows did not show: this expectation on every row
            direct = test.direct()
            rejected = direct.mask & ~direct.c.missing
            unexpected = int(frame.select(rejected.sum()).item())
        else:
            unexpected = sum(int(row[f"{tag}_bad{i}"]) for i in range(n_parts))
        nonnull = None if considered_out is None else n - int(row[f"{tag}_out"])
        considered = n if nonnull is None else nonnull
        success = considered == 0 or _mostly_success(considered, unexpected, mostly)
        values: list[Any] = []
        index: list[int] = []
        if unexpected:
            values, index = _partial(frame, e, kw, rejected)
            if positions is not None:  # rows a row_condition kept: GX reports their original index
                index = [positions[i] for i in index]
        return _format_map_output(result_format=_summary(), success=success, element_count=n, nonnull_count=nonnull,
                                  unexpected_count=unexpected, unexpected_list=values, unexpected_index_list=index)

    return _Plan(exprs, finish)


def _partial(frame: pl.DataFrame, e: Expectation, kw: dict[str, Any], bad: pl.Expr) -> tuple[list[Any], list[int]]:
    """The first unexpected values (as pandas holds them) and their row positions."""
    if e.type == "expect_compound_columns_to_be_unique":
        cols = [_col(frame, n) for n in kw["column_list"]]
        rows = frame.with_columns(bad.alias("__bad")).with_row_index("__i").filter(pl.col("__bad")).head(PARTIAL)
        view = rows.select([pl.col("__i")] + [c.value.alias(c.name) if c.kind == FLOAT else c.raw for c in cols])
        if any(c.int_view_float for c in cols):
            view = view.with_columns([pl.col(c.name).cast(pl.Float64) for c in cols if c.int_view_float])
        idx = view.get_column("__i").to_list()
        return [{c.name: _missing_as_pandas(c, r[c.name]) for c in cols} for r in view.drop("__i").iter_rows(named=True)], idx
    c = _col(frame, kw["column"])
    rows = (frame.select(pl.int_range(pl.len(), dtype=pl.Int64).alias("__i"), c.raw.alias("__v"), bad.alias("__bad"))
            .filter(pl.col("__bad")).head(PARTIAL))
    vals = rows.get_column("__v")
    if c.int_view_float or c.dtype.is_float():
        vals = vals.cast(pl.Float64)
    return [_missing_as_pandas(c, v) for v in vals.to_list()], rows.get_column("__i").to_list()
