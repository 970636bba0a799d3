"""String expectations (regexes, regex lists, value lengths) held to GX itself: adversarial
patterns and values, on small frames (every row matched in one part), on frames large
enough to be matched in parts side by side, and on few-valued columns (each distinct value
tested once; a value first seen late makes that expectation run on every row).

GX's pandas matches with ``str.contains`` (``re.search``), through pyarrow's RE2 for the
patterns it deems safe: the oracle is that, not Python's ``re`` alone."""

from __future__ import annotations

import re
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.validation import native as native_executor
from pipelines.validation.native.strings import SPLIT_ROWS, parts
from pipelines.validation.regex import to_rust
from tests.validation.test_differential import check

#: values that separate Python's re from Rust's regex and from RE2: non-ASCII digits
#: (Arabic-Indic, fullwidth, Devanagari), letters outside ASCII, astral code points, every
#: newline and space Python's \s knows, combining marks, case-folding traps, empties
VALUES = ["", "a", "ab", "abc", "ABC", "a\n", "\n", "b\n", "é", "É", "e\u0301", "€", "😀", "١٢٣", "３", "४2",
          "٣a", "foo bar", "x\x0by", "\x1c", "\u2028", "\u00a0", "a{,3}", "bbb", "aab", "[", "\\", "$", "a$",
          "ǅ", "K", "k", "\u212a", "ſ", "s", "ß", "SS", "İ", "i", "a\r\n", "\t", "_", "a1", "1a", "--", "12-34",
          "eu-west:2026-01-01:0000007", "EUR", "usd", "a\x00b", "\x08", "aaa", "a{2}", "}", "{", "#x"]

#: patterns run natively: each must give GX's result on every value
NATIVE = [r"^\d+$", r"\d", r"\D", r"^\w+$", r"\W", r"\s", r"\S", r"[^\d]", r"[\W]", r"[\s\S]", r"\u00e9",
          r"\N{EURO SIGN}", r"a|", r"x{0}", r"^$", r"\Aa\Z", r"\Z", r"a$", r"b$", r"^.$", r".", r"é+?", r"\x0b",
          r"a{2,}b{0,3}", r"[[]", r"\\", r"\$", r"(a|b)*c", r"a{3}", r"a{1,2}?", r"[\w-]", r"[é-ü]", r"\x41",
          r"\101", r"\0", r"(?:)", r"()", r"\|", r"[\]]", r"[]a]", r"[^]a]", r"^[A-Z]{3}$", r"^[a-z]{3}$",
          r"^[a-z][a-z0-9-]+:\d{4}-\d{2}-\d{2}:\d+$", r"^\s*$", r"(?:a|ab)(?:c|bcd)", r"^(?:[^\n])*$", r"😀",
          r"\t", r"k", r"s", r"ß", r"İ", r"a{0}", r"[{}]", r"{", r"a{ 2}", r"#"]

#: patterns with no exact translation (or read otherwise by RE2): GX runs them
FALLBACK = [r"(?i)abc", r"(?i)k", r"(?i)ß", r"a*+", r"(?>ab)", r"\bfoo", r"\Bb", r"(?a)\d", r"(?s).",
            r"(?m)^a", r"(?x) a b  # c", r"(?#comment)a", r"(?u)a", r"[\b]", r"a{,2}", r"a{,}", r"a{02}",
            r"(?P<g>a)(?P=g)", r"(a)\1", r"a(?=b)", r"(?!a)b", r"(?<!x)y", r"(?<=a)b", r"[[:alpha:]]",
            r"(?P<name>a)", r"x{1001}"]


def _frame(values: list[str | None], rows: int) -> pl.DataFrame:
    return pl.DataFrame({"s": [values[k % len(values)] for k in range(rows)]}, schema={"s": pl.String})


def _specs(patterns: list[str]) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    for rx in patterns:
        out += [("expect_column_values_to_match_regex", {"column": "s", "regex": rx}),
                ("expect_column_values_to_not_match_regex", {"column": "s", "regex": rx, "mostly": 0.5})]
    return out


def _list_specs() -> list[tuple[str, dict[str, Any]]]:
    lists = [[r"^\d+$", r"^[a-z]+$"], [r"a", r"b$", r"\s"], [r"é", r"(?i)é"], [r"^$"]]
    out: list[tuple[str, dict[str, Any]]] = []
    for rl in lists:
        out += [("expect_column_values_to_match_regex_list", {"column": "s", "regex_list": rl}),
                ("expect_column_values_to_match_regex_list", {"column": "s", "regex_list": rl, "match_on": "all"}),
                ("expect_column_values_to_not_match_regex_list", {"column": "s", "regex_list": rl, "mostly": 0.3})]
    for lo, hi in ((1, 2), (0, 0), (2, None), (None, 3)):
        kw: dict[str, Any] = {"column": "s", **({"min_value": lo} if lo is not None else {}),
                              **({"max_value": hi} if hi is not None else {})}
        out.append(("expect_column_value_lengths_to_be_between", kw))
    return out


def test_translation_gate() -> None:
    """Patterns whose reading differs between Python, Rust and RE2 are refused; the rest
    translate (a test that could not tell the two apart would pass with everything refused)."""
    assert [rx for rx in NATIVE if to_rust(rx) is None] == []
    assert [rx for rx in FALLBACK if to_rust(rx) is not None] == []


@pytest.mark.parametrize("rows", [len(VALUES) + 1, 1, 0], ids=["values", "one-row", "empty"])
def test_adversarial_regexes_match_gx(rows: int) -> None:
    frame = _frame([*VALUES, None], rows)
    specs = _specs(NATIVE + FALLBACK) + _list_specs()
    native = check(frame, specs)
    # every translated pattern and every list of them runs natively; the others on GX
    assert native == 2 * len(NATIVE) + 3 * 3 + 4


def test_large_columns_matched_in_parts_match_gx() -> None:
    """A column long enough to be split (one part per polars thread), with nulls, every
    adversarial value and an unexpected value at the first and the very last row."""
    rows = SPLIT_ROWS + 7
    values: list[str | None] = [f"eu-west:2026-01-01:{k:07d}" for k in range(rows)]
    for k, v in enumerate([*VALUES, None]):
        values[(k * 7919) % rows] = v
    values[0], values[-1] = "x", "٣"
    frame = pl.DataFrame({"s": values}, schema={"s": pl.String})
    assert len(parts(rows)) == pl.thread_pool_size()
    specs = _specs([r"^[a-z][a-z0-9-]+:\d{4}-\d{2}-\d{2}:\d+$", r"\d$", r"^\w", r"é|😀", r"\s"]) + _list_specs()
    assert check(frame, specs) == len(specs) - 3  # the (?i) lists run on GX


def test_few_valued_columns_match_gx() -> None:
    """Few distinct values: the regex once per value. A value first seen past the rows that
    name the candidates (and one only in the very last row) must still be found."""
    n = 4 * native_executor.SAMPLE + 5
    head = ["EUR", "usd", "b\n", "é€", "", None, "٣"]
    frame = pl.DataFrame({
        "s": [head[k % len(head)] for k in range(n)],
        "late": [head[k % len(head)] for k in range(n - 1)] + ["GBP1"],
    })
    specs = _specs([r"^[A-Z]{3}$", r"b$", r"\d", r"^$"]) + _list_specs()
    specs += [(t, {**kw, "column": "late"}) for t, kw in specs]
    assert check(frame, specs) == len(specs) - 6


values = st.lists(st.one_of(st.none(), st.text(alphabet="aAbé1١３ _-\n\t\x0b€😀:", max_size=6)), min_size=1, max_size=12)


@settings(max_examples=60, deadline=None)
@given(values, st.sampled_from(NATIVE))
def test_translated_patterns_equal_python_re(vals: list[str | None], rx: str) -> None:
    """Polars with the translated pattern, against Python's ``re.search`` on every value
    (the semantics GX's pandas keeps where RE2 would differ)."""
    rust = to_rust(rx)
    assert rust is not None
    got = pl.Series(vals, dtype=pl.String).str.contains(rust).to_list()
    assert got == [None if v is None else re.search(rx, v) is not None for v in vals], (rx, rust)
