"""The polars executor held to Great Expectations itself (GX's pandas engine is the oracle,
run at test time). For every expectation the native executor runs, success and the whole
``result`` (unexpected counts, partial lists, percentages, ``observed_value`` and its shape)
must equal GX's; an expectation it cannot run exactly must be an error result under
``polars`` (never a pass) and GX's own result under ``auto``.

Cases are batched: one wide frame (every dtype crossed with nulls, NaN, +-inf, -0.0,
all-null columns, Float32, Date, naive and tz-aware timestamps) and the same frame empty,
each against a few hundred expectations in one GX run; then randomised frames."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.validation import native as native_executor
from pipelines.validation import run_suite
from pipelines.validation.suites import Expectation

INF = math.inf
NAN = math.nan


def wide() -> pl.DataFrame:
    return pl.DataFrame({
        "i": [3, 1, 2, 2, -5, 2**62, 0, 7],
        "in": [3, None, 2, 2, None, 9, 0, 1],
        "f": [1.5, NAN, None, -0.0, 0.0, INF, -INF, 1.5],
        "fm": [0.25, 1e-3, 2.5, None, 7.0, 0.25, 3.0, NAN],
        "f32": [0.1, 0.2, 0.3, None, 1.0, 0.3, 2.5, -1.0],
        "s": ["ab", "b\n", "ab", None, "é€", "", "ABC", "a1b"],
        "b": [True, False, None, True, True, False, True, False],
        "d": [date(2026, 1, k) for k in range(1, 9)],
        "t": [datetime(2026, 1, k, 12) for k in range(1, 9)],
        "tz": [datetime(2026, 1, k, 12, tzinfo=UTC) for k in range(1, 9)],
        "an": [None] * 8,
        "sn": [None] * 8,
    }, schema={"i": pl.Int64, "in": pl.Int64, "f": pl.Float64, "fm": pl.Float64, "f32": pl.Float32, "s": pl.String,
               "b": pl.Boolean, "d": pl.Date, "t": pl.Datetime("us"), "tz": pl.Datetime("us", "UTC"),
               "an": pl.Int64, "sn": pl.String})


NUM = ["i", "in", "f", "fm", "f32", "an"]
ALL = [*NUM, "s", "b", "d", "t", "tz", "sn"]


def cases() -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    for c in ALL:
        for m in (None, 0.5):
            mk = {} if m is None else {"mostly": m}
            out += [("expect_column_values_to_not_be_null", {"column": c, **mk}),
                    ("expect_column_values_to_be_null", {"column": c, **mk}),
                    ("expect_column_values_to_be_unique", {"column": c, **mk})]
        out += [("expect_column_to_exist", {"column": c}), ("expect_column_to_exist", {"column": c, "column_index": 2}),
                ("expect_column_to_exist", {"column": c, "column_index": 0})]
        for t in ("int", "int64", "float", "float64", "float32", "str", "object", "Int64", "Float64", "datetime64",
                  "bool", "String", "Timestamp", "datetime64[us]"):
            out.append(("expect_column_values_to_be_of_type", {"column": c, "type_": t}))
        out.append(("expect_column_distinct_values_to_be_in_set", {"column": c, "value_set": [0, 1, 2, 3, 1.5, "ab"]}))
    for c in NUM:
        for lo, hi, smin, smax in [(0, 3, False, False), (0, 3, True, True), (None, 2, False, False), (-1.5, None, False, True),
                                   (0.1, 0.3, False, False), (-INF, INF, False, False), (0, 0, False, False)]:
            kw: dict[str, Any] = {"column": c}
            if lo is not None:
                kw.update(min_value=lo, strict_min=smin)
            if hi is not None:
                kw.update(max_value=hi, strict_max=smax)
            out.append(("expect_column_values_to_be_between", kw))
            out.append(("expect_column_values_to_be_between", {**kw, "mostly": 0.6}))
            for agg in ("mean", "median", "min", "max", "stdev"):
                out.append((f"expect_column_{agg}_to_be_between", kw))
        for vs in ([1, 2, 3], [1.5, 0.0, 2], [2.0, 0.3], [0]):
            out += [("expect_column_values_to_be_in_set", {"column": c, "value_set": vs}),
                    ("expect_column_values_to_not_be_in_set", {"column": c, "value_set": vs, "mostly": 0.5})]
        out.append(("expect_column_quantile_values_to_be_between", {"column": c, "quantile_ranges": {
            "quantiles": [0.0, 0.1, 0.25, 0.5, 0.75, 1.0], "value_ranges": [[None, 1], [-10, 10], [0, None], [0, 3], [None, None], [1, 10]]}}))
    for c in ("s", "sn"):
        for rx in ("^a", "b$", "[0-9]", "é", "^$", "a.b", r"\w+", r"\s", "(?!a)b", r"b\Z", "[[:alpha:]]", "(?i)abc", r"(a)\1", "^[A-Z]{3}$"):
            out += [("expect_column_values_to_match_regex", {"column": c, "regex": rx}),
                    ("expect_column_values_to_not_match_regex", {"column": c, "regex": rx})]
        out += [("expect_column_value_lengths_to_be_between", {"column": c, "min_value": 1, "max_value": 2}),
                ("expect_column_values_to_be_in_set", {"column": c, "value_set": ["ab", "", "é€"]}),
                ("expect_column_values_to_not_be_in_set", {"column": c, "value_set": ["ab", 1]})]
    for how in (None, "any_value_is_missing", "never"):
        for cols in (["in", "f"], ["in", "s"], ["i", "fm"], ["f", "fm"]):
            kw = {"column_list": cols, **({"ignore_row_if": how} if how else {})}
            out.append(("expect_compound_columns_to_be_unique", kw))
    out += [
        ("expect_table_row_count_to_be_between", {"min_value": 1, "max_value": 8}),
        ("expect_table_row_count_to_be_between", {"min_value": 9}),
        ("expect_table_row_count_to_be_between", {"min_value": {"$PARAMETER": "now()"}}),
        ("expect_column_values_to_be_between", {"column": "i", "min_value": {"$PARAMETER": "2 + 1"}}),
        ("expect_column_values_to_be_between", {"column": "i", "min_value": {"$PARAMETER": "missing_param"}}),
        # ISO strings on timestamps and dates: GX's own behaviour, whatever it is
        ("expect_column_values_to_be_between", {"column": "t", "min_value": "2026-01-03"}),
        ("expect_column_values_to_be_between", {"column": "tz", "min_value": "2026-01-03T00:00:00+00:00"}),
        ("expect_column_values_to_be_between", {"column": "d", "min_value": "2026-01-03"}),
        ("expect_column_max_to_be_between", {"column": "t", "min_value": "2026-01-03"}),
        ("expect_column_min_to_be_between", {"column": "tz", "max_value": "2026-01-03T00:00:00+00:00"}),
        ("expect_column_values_to_be_in_set", {"column": "d", "value_set": ["2026-01-01"]}),
        # row conditions in both of GX's syntaxes
        ("expect_column_values_to_not_be_null", {"column": "in", "row_condition": "i > 1", "condition_parser": "pandas"}),
        ("expect_column_values_to_be_between", {"column": "f", "min_value": 0, "row_condition": 'col("i") > 1',
                                                "condition_parser": "great_expectations"}),
        ("expect_column_values_to_be_unique", {"column": "i", "result_format": "COMPLETE", "catch_exceptions": True}),
    ]
    return out


def compare(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b or abs(a - b) <= 1e-9 * max(abs(a), abs(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(compare(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(compare(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def check(frame: pl.DataFrame, specs: list[tuple[str, dict[str, Any]]]) -> int:
    """Every native result equals GX's; the rest are error results (polars) and GX's (auto).
    Returns how many ran natively."""
    expectations = [Expectation(i, t, kw, {}, "block") for i, (t, kw) in enumerate(specs)]
    ours = run_suite(frame, expectations, "polars")
    theirs = run_suite(frame, expectations, "gx")
    native = 0
    for e, a, b in zip(expectations, ours, theirs, strict=True):
        if native_executor.is_not_native(a):
            assert a["success"] is False and a["exception_info"]["raised_exception"], (e, a)
            continue
        native += 1
        assert a["success"] == b["success"], (e.type, e.kwargs, a["result"], b["result"], b["exception_info"])
        assert compare(a["result"], b["result"]), (e.type, e.kwargs, a["result"], b["result"])
    auto = run_suite(frame, expectations, "auto")
    for e, a, b in zip(expectations, auto, theirs, strict=True):
        assert a["success"] == b["success"] and compare(a["result"], b["result"]), (e.type, e.kwargs, a["result"], b["result"])
    return native


@pytest.mark.parametrize("rows", [8, 0, 1], ids=["full", "empty", "one-row"])
def test_every_type_on_every_dtype_matches_gx(rows: int) -> None:
    specs = cases()
    native = check(wide().head(rows), specs)
    assert native > len(specs) * 0.6  # most of it runs natively


ints = st.one_of(st.none(), st.integers(-5, 5), st.sampled_from([-(2**62), 2**62]))
floats = st.one_of(st.none(), st.floats(-10, 10, allow_nan=False, width=64), st.just(NAN),
                   st.sampled_from([1e300, -1e300, 0.0, -0.0, INF, -INF]))
texts = st.one_of(st.none(), st.text(alphabet="ab1é€ \n😀", max_size=5))


@st.composite
def frames(draw: Any) -> pl.DataFrame:
    n = draw(st.integers(0, 25))
    return pl.DataFrame(
        {"i": draw(st.lists(ints, min_size=n, max_size=n)), "f": draw(st.lists(floats, min_size=n, max_size=n)),
         "s": draw(st.lists(texts, min_size=n, max_size=n))},
        schema={"i": pl.Int64, "f": pl.Float64, "s": pl.String},
    )


RANDOM_SPECS: list[tuple[str, dict[str, Any]]] = [
    *[(t, {"column": c, "mostly": 0.8}) for c in "ifs" for t in ("expect_column_values_to_not_be_null",
                                                                  "expect_column_values_to_be_null",
                                                                  "expect_column_values_to_be_unique")],
    ("expect_compound_columns_to_be_unique", {"column_list": ["i", "s"]}),
    ("expect_compound_columns_to_be_unique", {"column_list": ["f", "s"], "ignore_row_if": "any_value_is_missing"}),
    *[("expect_column_values_to_be_between", {"column": c, "min_value": -2, "max_value": 3.5, "strict_max": True}) for c in "if"],
    ("expect_column_values_to_be_in_set", {"column": "i", "value_set": [-1, 0, 1, 2]}),
    ("expect_column_values_to_be_in_set", {"column": "f", "value_set": [0, 1, 2.5]}),
    ("expect_column_values_to_not_be_in_set", {"column": "s", "value_set": ["a", "é"]}),
    *[(t, {"column": "s", "regex": rx}) for rx in ("^a", "b$", "[0-9]", r"\s", "^$") for t in
      ("expect_column_values_to_match_regex", "expect_column_values_to_not_match_regex")],
    ("expect_column_value_lengths_to_be_between", {"column": "s", "min_value": 1, "max_value": 3}),
    *[(f"expect_column_{agg}_to_be_between", {"column": c, "min_value": -3, "max_value": 3})
      for c in "if" for agg in ("mean", "median", "min", "max", "stdev")],
    *[("expect_column_quantile_values_to_be_between", {"column": c, "quantile_ranges": {
        "quantiles": [0.25, 0.5, 0.9], "value_ranges": [[-3, 3], [-2, 2], [-5, 5]]}}) for c in "if"],
    *[("expect_column_distinct_values_to_be_in_set", {"column": c, "value_set": [0, 1, 2, "a"]}) for c in "ifs"],
]


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(frame=frames())
def test_random_frames_match_gx(frame: pl.DataFrame) -> None:
    check(frame, RANDOM_SPECS)


def test_quantiles_within_a_relative_tolerance_of_a_bound_match_gx() -> None:
    """GX counts a quantile within a relative 1e-4 of a bound as in range (found by the random
    frames: a median of -2.00001 against [-2, 2]); unbounded sides and empty columns too."""
    frame = pl.DataFrame({"f": [-2.00001, -2.00001, -2.00001, 0.0, 1e300], "e": [None] * 5},
                         schema={"f": pl.Float64, "e": pl.Float64})
    ranges = [[-2, 2], [-1.9999, None], [None, -2.001], [0.5, 1e300]]
    check(frame, [("expect_column_quantile_values_to_be_between", {"column": c, "quantile_ranges": {
        "quantiles": [0.25, 0.5, 0.75, 0.9], "value_ranges": ranges}}) for c in ("f", "e")])


def test_one_bad_expectation_fails_alone() -> None:
    frame = pl.DataFrame({"a": [1, 2, 3], "d": [date(2026, 1, 1)] * 3})
    es = [Expectation(0, "expect_column_values_to_be_between", {"column": "d", "min_value": "2026-01-02"}, {}, "block"),
          Expectation(1, "expect_column_values_to_match_regex", {"column": "a", "regex": "(?!x)1"}, {}, "block"),
          Expectation(2, "expect_column_values_to_not_be_null", {"column": "a"}, {}, "block"),
          Expectation(3, "expect_column_sum_to_be_between", {"column": "a", "min_value": 100}, {}, "block")]
    polars_only = run_suite(frame, es, "polars")
    assert [r["success"] for r in polars_only] == [False, False, True, False]
    assert all(r["exception_info"]["raised_exception"] for r in (polars_only[0], polars_only[1], polars_only[3]))
    auto = run_suite(frame, es, "auto")
    assert [r["meta"]["engine"] for r in auto] == ["gx", "gx", "polars", "gx"]
    assert auto[3]["success"] is False  # never silently passes what the executor cannot run


CONDITIONS: list[tuple[Any, str | None]] = [
    ("i > 1", "pandas"), ("in >= 2", "pandas"), ("f != 1.5", "pandas"), ("f < 2 and fm > 0.1", "pandas"),
    ('s == "ab" | s == "a1b"', "pandas"), ('s != "ab"', "pandas"), ("s.isnull()", "pandas"), ("~in.isnull()", "pandas"),
    ("fm.notnull() & i in [1, 2, 3]", "pandas"), ('s not in ["ab", ""]', "pandas"), ("-1 < i <= 2", "pandas"),
    ("not (i > 2)", "pandas"), ("`in` > 1", "pandas"), ('s > "a"', "pandas"), ("in == 2.0", "pandas"),
    ('col("i") > 1', "great_expectations"), ('col("s") == "ab"', "great_expectations"),
    ('col("fm").notnull()', "great_expectations"), ('col("in") <= 2', "great_expectations"),
    ({"type": "comparison", "column": {"name": "i"}, "operator": ">", "parameter": 1}, None),
    # outside the translated subset: these run on GX
    ("i > in", "pandas"), ("f32 > 0.2", "pandas"), ("b == True", "pandas"), ("i + 1 > 2", "pandas"),
    ('s.str.len() > 1', "pandas"), ("i > 1", None), ('col("d") > date("2026-01-03")', "great_expectations"),
]


def condition_specs() -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    for cond, parser in CONDITIONS:
        ck: dict[str, Any] = {"row_condition": cond, **({"condition_parser": parser} if parser else {})}
        out += [("expect_column_values_to_not_be_null", {"column": "in", **ck}),
                ("expect_column_values_to_be_unique", {"column": "s", **ck}),
                ("expect_column_values_to_be_between", {"column": "in", "min_value": 1, "max_value": 2, **ck}),
                ("expect_column_values_to_be_in_set", {"column": "s", "value_set": ["ab", "b\n"], **ck}),
                ("expect_column_mean_to_be_between", {"column": "in", "min_value": 0, **ck}),
                ("expect_column_median_to_be_between", {"column": "f", "max_value": 2, **ck}),
                ("expect_column_values_to_be_of_type", {"column": "in", "type_": "float64", **ck}),
                ("expect_table_row_count_to_be_between", {"min_value": 3, **ck})]
    return out


def test_row_conditions_match_gx() -> None:
    """Both of GX's syntaxes (and a condition object) run natively on the rows GX keeps;
    what is outside the exact subset is an error under polars and GX's result under auto."""
    specs = condition_specs()
    native = check(wide(), specs)
    assert native >= 17 * 8  # every expectation under each of the 17 translated conditions


def test_fast_paths_match_gx() -> None:
    """Uniqueness proven by order or counted by hash, quantiles picked by selection, small
    and large value sets: the same results as GX."""
    n = 40
    frame = pl.DataFrame({
        "inc": list(range(n)),
        "dec_s": [None if k % 7 == 0 else f"id-{n - k:04d}" for k in range(n)],
        "flat": [k // 2 for k in range(n)],
        "zeros": [-0.0, 0.0] + [float(k) for k in range(n - 2)],
        "nan": [NAN if k % 5 == 0 else k / 3 for k in range(n)],
        "dup_s": [f"v{k % 13}" for k in range(n)],
    })
    specs: list[tuple[str, dict[str, Any]]] = [
        ("expect_column_values_to_be_unique", {"column": c}) for c in frame.columns]
    for method in (None, "nearest", "lower", "higher", "linear", "midpoint"):
        for c in ("inc", "nan", "zeros", "flat"):
            kw: dict[str, Any] = {"column": c, "quantile_ranges": {"quantiles": [0.0, 0.05, 0.5, 0.51, 0.95, 1.0],
                                                                   "value_ranges": [[None, None]] * 6}}
            if method:
                kw["allow_relative_error"] = method
            specs.append(("expect_column_quantile_values_to_be_between", kw))
    for c in ("inc", "nan", "zeros", "flat"):
        specs += [("expect_column_median_to_be_between", {"column": c, "min_value": 0}),
                  ("expect_column_values_to_be_in_set", {"column": c, "value_set": list(range(0, 40, 2))}),
                  ("expect_column_values_to_not_be_in_set", {"column": c, "value_set": [1, 2, 3]})]
    specs.append(("expect_column_values_to_be_in_set", {"column": "dup_s", "value_set": [f"v{k}" for k in range(20)]}))
    for rows in (n, 1, 0):
        check(frame.head(rows), specs)
    check(frame.reverse(), specs)


def test_low_cardinality_strings_match_gx() -> None:
    """A string column with few distinct values has its regex and lengths evaluated once
    per distinct value (the frame must be larger than the sample that decides it)."""
    values = ["EUR", "usd", "b\n", "é€", "", None, "GBP1"]
    n = 4 * native_executor.SAMPLE + 5
    frame = pl.DataFrame({"c": [values[k % len(values)] for k in range(n)],
                          "late": ["x"] * (n - 3) + ["new", "y", None]})  # a value past the sample
    specs: list[tuple[str, dict[str, Any]]] = []
    for c in ("c", "late"):
        for rx in ("^[A-Z]{3}$", "b$", r"\w", "^$", "(?!E)U"):
            specs += [("expect_column_values_to_match_regex", {"column": c, "regex": rx}),
                      ("expect_column_values_to_not_match_regex", {"column": c, "regex": rx, "mostly": 0.5})]
        specs.append(("expect_column_value_lengths_to_be_between", {"column": c, "min_value": 1, "max_value": 3}))
    assert check(frame, specs) == len(specs) - 4  # the look-ahead runs on GX
