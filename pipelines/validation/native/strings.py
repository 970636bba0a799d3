"""String expectations at the cost of about one pass: regexes (one or a list) and value
lengths, over a column's few distinct values when it has few, else in Rust (polars'
``str.contains`` with the pattern :func:`pipelines.validation.regex.to_rust` translated),
the rows split in as many parts as polars has threads so that the parts run side by side
in the executor's one ``select``.

A column has *few distinct values* when the first :data:`SAMPLE` rows hold at most
:data:`SMALL_SET` of them and every other row equals one of those: the regex runs once per
distinct value, each row costs a few equalities, and the check that no other value occurs
(a few equality passes, no hash of every row) is one more aggregate of the same ``select``;
when it fails, that expectation alone is re-run on every row.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import polars as pl

from pipelines.validation.native.plan import SAMPLE, SMALL_SET, STR, _Col, _need, _within
from pipelines.validation.regex import to_rust

#: below this many rows a column is matched in one part (splitting costs more than it saves)
SPLIT_ROWS = 1 << 16


REGEX_TYPES = {"expect_column_values_to_match_regex", "expect_column_values_to_not_match_regex"}


REGEX_LIST_TYPES = {"expect_column_values_to_match_regex_list", "expect_column_values_to_not_match_regex_list"}


STRING_TYPES = REGEX_TYPES | REGEX_LIST_TYPES | {"expect_column_value_lengths_to_be_between"}


def one_of(c: _Col, values: pl.Series | list[Any]) -> pl.Expr:
    """Whether each row equals one of ``values`` (null stays null)."""
    listed = values.to_list() if isinstance(values, pl.Series) else values
    return functools.reduce(lambda a, b: a | b, [c.raw == pl.lit(v, dtype=c.dtype) for v in listed],
                            pl.when(c.raw.is_null()).then(None).otherwise(pl.lit(False)))


def candidates(frame: pl.DataFrame, c: _Col) -> pl.Series | None:
    """The distinct present values of the first ``SAMPLE`` rows of a string column, when
    there are at most ``SMALL_SET`` of them and the column is long enough for that to pay;
    else None. They are all of the column's values when :func:`covers` holds."""
    s = frame.get_column(c.name)
    if c.kind != STR or s.len() < 4 * SAMPLE:
        return None
    seen = s.head(SAMPLE).drop_nulls().unique()
    return seen if 0 < seen.len() <= SMALL_SET else None


def covers(c: _Col, seen: pl.Series) -> pl.Expr:
    """Whether every present value of the column is one of ``seen`` (equalities, not a hash
    of every row; nulls are ignored by ``all``)."""
    return one_of(c, seen).all()


def patterns(c: _Col, e_type: str, kw: dict[str, Any]) -> list[str]:
    """The Rust translations of an expectation's regex (or regex list); NotNative when one
    has no exact translation or the column is not a string column as pandas sees it."""
    _need(c.kind == STR, f"regex on a {c.dtype} column runs on GX (it matches str() of each value)")
    if e_type in REGEX_LIST_TYPES:
        listed = kw.get("regex_list")
        _need(isinstance(listed, list) and bool(listed), "regex_list is not a non-empty list")
        assert isinstance(listed, list)
        if e_type == "expect_column_values_to_match_regex_list":
            _need((kw.get("match_on") or "any") in ("any", "all"), f"match_on {kw.get('match_on')!r}")
    else:
        listed = [kw.get("regex")]
    out: list[str] = []
    for p in listed:
        _need(isinstance(p, str), "regex is not a string")
        rust = to_rust(p)
        _need(rust is not None, f"regex {p!r} has no exact polars equivalent")
        assert rust is not None
        out.append(rust)
    return out


def _rejects(e_type: str, kw: dict[str, Any], rust: list[str]) -> Callable[[pl.Expr], pl.Expr]:
    """The rows' rejection, as a function of the column's values (the whole column or a part):
    True where GX's pandas ``str.contains`` (``re.search``) makes the row unexpected."""
    def rejects(values: pl.Expr) -> pl.Expr:
        hits = [values.str.contains(p) for p in rust]
        if e_type == "expect_column_values_to_match_regex":
            return ~hits[0]
        if e_type == "expect_column_values_to_not_match_regex":
            return hits[0]
        if e_type == "expect_column_values_to_not_match_regex_list":
            return pl.any_horizontal(hits)
        how = kw.get("match_on") or "any"
        return ~(pl.any_horizontal(hits) if how == "any" else pl.all_horizontal(hits))

    return rejects


def _lengths_reject(kw: dict[str, Any]) -> Callable[[pl.Expr], pl.Expr]:
    return lambda values: ~_within(values.str.len_chars(), kw)


def parts(n: int) -> list[tuple[int, int]]:
    """``(offset, length)`` of the parts a column of ``n`` rows is matched in."""
    k = pl.thread_pool_size() if n >= SPLIT_ROWS else 1
    bounds = [n * i // k for i in range(k + 1)]
    return [(lo, hi - lo) for lo, hi in zip(bounds, bounds[1:], strict=False)]


class StringTest:
    """A string expectation's rejected rows: ``mask`` over the whole column and ``counts``
    (one expression per part, their sum the number of rejected rows), both exact when
    ``guard`` (an aggregate, None: always) is true. A guarded test assumes the column holds
    only the values of its first rows and tests those once each; when the guard is false,
    :meth:`direct` is the test of every row."""

    def __init__(self, frame: pl.DataFrame, c: _Col, rejects: Callable[[pl.Expr], pl.Expr], *,
                 sample: bool = True) -> None:
        self.frame, self.c, self.rejects = frame, c, rejects
        seen = candidates(frame, c) if sample else None
        self.guard: pl.Expr | None = None
        if seen is None:
            self.mask = rejects(c.raw).fill_null(False)
            self.counts = [rejects(c.raw.slice(lo, n)).fill_null(False).sum() for lo, n in parts(frame.height)]
        else:  # the test once per distinct value, then a few equalities per row
            bad = seen.to_frame("v").filter(rejects(pl.col("v")).fill_null(False)).get_column("v")
            self.guard = covers(c, seen)
            self.mask = one_of(c, bad).fill_null(False)
            self.counts = [self.mask.sum()]

    def direct(self) -> StringTest:
        return StringTest(self.frame, self.c, self.rejects, sample=False)

    def exact(self) -> StringTest:
        """This test with its guard settled now: itself, or the test of every row."""
        if self.guard is None or self.frame.select(self.guard).item():
            return self
        return self.direct()


def string_test(frame: pl.DataFrame, c: _Col, e_type: str, kw: dict[str, Any]) -> StringTest:
    """The rows a regex, regex-list or value-length expectation rejects (missing values never)."""
    if e_type == "expect_column_value_lengths_to_be_between":
        _need(c.kind == STR, f"lengths of a {c.dtype} column run on GX")
        return StringTest(frame, c, _lengths_reject(kw))
    return StringTest(frame, c, _rejects(e_type, kw, patterns(c, e_type, kw)))
