"""A native polars executor for the expectations it can run exactly as GX does.

Each expectation is first *planned*: its kwargs (suite parameters resolved by GX's own
parser), its column's dtype and its arguments' types must fall in the cases this executor
reproduces exactly; anything else (a ``row_condition``, string bounds, a regex with no exact
Rust translation, a dtype pandas sees differently...) raises :class:`NotNative` with the
reason, and becomes that expectation's error result - which ``run_suite`` under engine
``auto`` replaces with GX's own result. Nothing is ignored: a kwarg the plan does not know
routes the expectation away from the native path.

Every planned expectation becomes a few aggregate expressions; they all run in **one** lazy
``select`` (common subexpressions shared: one sort per column serves every quantile and the
median); if that select fails, each expectation runs alone so one bad expression fails only
its own result. Results are GX ``ExpectationValidationResult`` dicts, shaped by GX's own
helpers (``_format_map_output``, ``convert_to_json_serializable``). Column values are seen
as GX's pandas engine sees them: an integer column with nulls is float64, NaN is missing,
Float32 is compared in float64.

:func:`unexpected_rows` gives the row mask of a row-level expectation, which is what the
quarantine policy moves aside.
"""

from __future__ import annotations

import functools
import math
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import polars as pl

from pipelines.validation.conditions import NotNativeCondition, condition_mask, has_condition
from pipelines.validation.gx import import_gx
from pipelines.validation.regex import to_rust
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


# --- how GX's pandas engine sees a column -------------------------------------------------

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


# --- planning ------------------------------------------------------------------------------

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


def _regex(c: _Col, pattern: Any) -> str:
    _need(c.kind == STR, f"regex on a {c.dtype} column runs on GX (it matches str() of each value)")
    _need(isinstance(pattern, str), "regex is not a string")
    rust = to_rust(pattern)
    _need(rust is not None, f"regex {pattern!r} has no exact polars equivalent")
    assert rust is not None
    return rust


HASH_SEED = 0x10C57E9


def _unique_view(c: _Col) -> pl.Expr:
    """Values as pandas' ``duplicated()`` compares them: NaN is missing, -0.0 equals 0.0."""
    _need(c.kind in (INT, FLOAT, STR), f"column {c.name!r} ({c.dtype}) is not run natively")
    return (c.value + 0.0) if c.kind == FLOAT else c.value


def _strictly_monotonic(v: pl.Expr) -> pl.Expr:
    """True when the present values strictly increase or strictly decrease: then no two are
    equal, which one comparison per row proves (ids generated in order are the usual case)."""
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


def _few_distinct(frame: pl.DataFrame, c: _Col) -> pl.Series | None:
    """The distinct present values of a string column that has at most ``SMALL_SET`` of them
    (a sample of its first rows decides whether to look), else None."""
    s = frame.get_column(c.name)
    if c.kind != STR or s.len() < 4 * SAMPLE or s.head(SAMPLE).n_unique() > SMALL_SET:
        return None
    distinct = s.unique().drop_nulls()
    return distinct if distinct.len() <= SMALL_SET else None


def _one_of(c: _Col, values: pl.Series) -> pl.Expr:
    """Whether each row equals one of ``values`` (null stays null)."""
    return functools.reduce(lambda a, b: a | b, [c.raw == pl.lit(v, dtype=c.dtype) for v in values.to_list()],
                            pl.when(c.raw.is_null()).then(None).otherwise(pl.lit(False)))


def _bad_expr(frame: pl.DataFrame, e: Expectation, kw: dict[str, Any]) -> tuple[pl.Expr, pl.Expr | None]:
    """(rows the expectation rejects, rows it does not consider) - the second is None for
    the null expectations, which consider every row."""
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
        return bad, ignored
    c = _col(frame, kw.get("column"))
    if e.type in NULL_TYPES:
        native_dtype = c.kind in (INT, FLOAT, STR) or c.dtype in (pl.Boolean, pl.Date) or isinstance(c.dtype, pl.Datetime)
        _need(native_dtype and (c.kind != OTHER or e.type.endswith("not_be_null")),
              f"column {c.name!r} ({c.dtype}) is not run natively")
        return (c.missing if e.type.endswith("not_be_null") else ~c.missing), None
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
    elif e.type in ("expect_column_values_to_match_regex", "expect_column_values_to_not_match_regex"):
        rx = _regex(c, kw.get("regex"))
        distinct = _few_distinct(frame, c)
        if distinct is None:
            matched = c.raw.str.contains(rx)
        else:  # the regex once per distinct value, then a few equalities per row
            matched = _one_of(c, distinct.filter(distinct.str.contains(rx)))
        bad = ~matched if e.type == "expect_column_values_to_match_regex" else matched
    elif e.type == "expect_column_value_lengths_to_be_between":
        _need(c.kind == STR, f"lengths of a {c.dtype} column run on GX")
        distinct = _few_distinct(frame, c)
        if distinct is None:
            bad = ~_within(c.raw.str.len_chars(), kw)
        else:
            ok = distinct.to_frame("v").filter(_within(pl.col("v").str.len_chars(), kw)).get_column("v")
            bad = ~_one_of(c, ok)
    else:  # pragma: no cover - guarded by supports()
        raise NotNative(e.type)
    return bad.fill_null(False) & ~c.missing, c.missing


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
    bad, considered_out = _bad_expr(frame, e, kw)
    unique_col = _col(frame, kw["column"]) if e.type == "expect_column_values_to_be_unique" else None
    # uniqueness is proven first by one comparison per row; counted only when that fails
    exprs = [(_strictly_monotonic(_unique_view(unique_col)) if unique_col is not None else bad.sum()).alias(f"{tag}_bad")]
    if considered_out is not None:
        exprs.append(considered_out.sum().alias(f"{tag}_out"))
    mostly = kw.get("mostly")
    mostly = 1.0 if mostly is None else float(mostly)
    n = frame.height

    def finish(row: dict[str, Any]) -> dict[str, Any]:
        import_gx()
        from great_expectations.expectations.expectation import _format_map_output, _mostly_success

        if unique_col is None:
            unexpected = int(row[f"{tag}_bad"])
        else:
            unexpected = 0 if row[f"{tag}_bad"] else _duplicated_count(frame, unique_col)
        nonnull = None if considered_out is None else n - int(row[f"{tag}_out"])
        considered = n if nonnull is None else nonnull
        success = considered == 0 or _mostly_success(considered, unexpected, mostly)
        values: list[Any] = []
        index: list[int] = []
        if unexpected:
            values, index = _partial(frame, e, kw, bad)
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
    so GX call) picks for ``qs`` over ``n`` values: numpy's own index arithmetic, run on
    ``0..n-1`` so the value it returns is the index itself."""
    import numpy as np

    if n == 0:
        return [0 for _ in qs]
    picked = np.quantile(np.arange(n, dtype=np.float64), np.asarray(qs, dtype=np.float64), method=method)  # type: ignore[call-overload]  # method is one of numpy's names
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
        return _distinct_plan(c, kw, tag)
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
            details = [_ok(c, v, {"min_value": lo, "max_value": hi})
                       for v, (lo, hi) in zip(values, qr["value_ranges"], strict=True)]
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


def _distinct_plan(c: _Col, kw: dict[str, Any], tag: str) -> _Plan:
    _need(c.kind in (INT, FLOAT, STR), f"column {c.name!r} ({c.dtype}) is not run natively")
    value_set = kw.get("value_set")
    _need(isinstance(value_set, list), "value_set is not a list")
    v = c.value.cast(pl.Float64) if c.kind == FLOAT else c.value

    def finish(row: dict[str, Any]) -> dict[str, Any]:
        import_gx()
        from great_expectations.constants import MAX_DISTINCT_VALUES

        column_set = set(row[tag] or [])
        not_in = list(column_set - set(value_set or []))
        try:
            not_in = sorted(not_in)
        except TypeError:
            not_in = sorted(not_in, key=str)
        return {"success": not not_in, "result": {"observed_value": None, "unexpected_count": len(not_in),
                                                  "partial_unexpected_list": not_in[:MAX_DISTINCT_VALUES]}}

    return _Plan([v.drop_nulls().unique(maintain_order=True).implode().alias(tag)], finish)


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


def _plan(frame: pl.DataFrame, e: Expectation, positions: list[int] | None = None) -> _Plan:
    _need(e.type in SUPPORTED, f"{e.type} has no native implementation")
    kw = _resolve(e)
    tag = f"e{e.index}"
    return _map_plan(frame, e, kw, tag, positions) if e.type in MAP_TYPES else _agg_plan(frame, e, kw, tag)


# --- results -------------------------------------------------------------------------------

def _json(x: Any) -> Any:
    import_gx()
    from great_expectations.util import convert_to_json_serializable

    return convert_to_json_serializable(x)


def _result(e: Expectation, out: dict[str, Any]) -> dict[str, Any]:
    return {
        "success": bool(out["success"]),
        "expectation_config": {"type": e.type, "kwargs": e.kwargs, "meta": e.meta},
        "result": _json(out.get("result") or {}),
        "meta": {"engine": "polars"},
        "exception_info": {"raised_exception": False, "exception_traceback": None, "exception_message": None},
    }


def error_result(e: Expectation, message: str, *, native: bool, tb: str | None = None) -> dict[str, Any]:
    """GX's shape for an expectation that could not run (``exception_info`` set, no success).
    ``meta.not_native`` marks one the native executor does not run, for GX to take over."""
    return {
        "success": False,
        "expectation_config": {"type": e.type, "kwargs": e.kwargs, "meta": e.meta},
        "result": {},
        "meta": {"engine": "polars", **({} if native else {"not_native": message})},
        "exception_info": {"raised_exception": True, "exception_traceback": tb, "exception_message": message},
    }


def is_not_native(result: dict[str, Any]) -> bool:
    return bool((result.get("meta") or {}).get("not_native"))


def _finish(e: Expectation, plan: _Plan, row: dict[str, Any]) -> dict[str, Any]:
    try:
        return _result(e, plan.finish(row))
    except NotNative as exc:
        return error_result(e, str(exc), native=False)
    except Exception as exc:
        return error_result(e, f"{type(exc).__name__}: {exc}", native=False, tb=traceback.format_exc())


def _condition_key(e: Expectation) -> str | None:
    import json

    if not has_condition(e.kwargs):
        return None
    return json.dumps([e.kwargs.get("row_condition"), e.kwargs.get("condition_parser")], sort_keys=True, default=str)


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


def _run(frame: pl.DataFrame, expectations: list[Expectation], out: dict[int, dict[str, Any]],
         positions: list[int] | None) -> None:
    plans: dict[int, _Plan] = {}
    for e in expectations:
        try:
            plans[e.index] = _plan(frame, e, positions)
        except NotNative as exc:
            out[e.index] = error_result(e, str(exc), native=False)
        except Exception as exc:  # a malformed kwarg the loader let through: this one fails
            out[e.index] = error_result(e, f"{type(exc).__name__}: {exc}", native=False, tb=traceback.format_exc())
    exprs = [x for p in plans.values() for x in p.exprs]
    row: dict[str, Any] = {}
    try:
        if exprs:
            row = frame.lazy().select(exprs).collect(engine=ENGINE).row(0, named=True)
    except Exception:  # isolate: each expectation alone, so one bad expression fails only itself
        for e in expectations:
            if e.index not in plans or not plans[e.index].exprs:
                continue
            try:
                row.update(frame.lazy().select(plans[e.index].exprs).collect(engine=ENGINE).row(0, named=True))
            except Exception as exc:
                out[e.index] = error_result(e, f"{type(exc).__name__}: {exc}", native=False, tb=traceback.format_exc())
                del plans[e.index]
    for e in expectations:
        if e.index in plans:
            out[e.index] = _finish(e, plans[e.index], row)


def validate(frame: pl.DataFrame, expectations: list[Expectation]) -> list[dict[str, Any]]:
    """Run ``expectations`` over ``frame``: one pass for those without a row condition, one
    per distinct row condition (over the rows it keeps); GX-format results, in order. An
    expectation the executor cannot run exactly gets an error result marked ``not_native``
    (see :func:`is_not_native`); one never takes down the others."""
    out: dict[int, dict[str, Any]] = {}
    groups: dict[str | None, list[Expectation]] = {}
    for e in expectations:
        groups.setdefault(_condition_key(e), []).append(e)
    for key, es in groups.items():
        if key is None:
            _run(frame, es, out, None)
            continue
        try:
            sub, positions = conditioned(frame, es[0].kwargs)
        except Exception as exc:
            for e in es:
                out[e.index] = error_result(e, str(exc), native=False)
            continue
        _run(sub, es, out, positions)
    return [out[e.index] for e in expectations]
