"""``row_condition`` as polars expressions, exactly as GX's pandas engine filters rows.

GX 1.x turns every row condition into a pandas ``DataFrame.query`` string: the ``pandas``
syntax is passed through, the ``great_expectations`` syntax (``col("a") > 1``) and
condition objects are rendered by GX's own engine (``condition_to_filter_clause``). So
this module renders the condition with GX's code, preprocesses the query with pandas' own
tokenizer rewrite (``&`` / ``|`` as ``and`` / ``or``, backquoted names), and translates the
resulting Python expression node by node - only a small subset whose pandas semantics are
reproduced exactly:

* comparisons (``< <= > >= == !=``, chained) of a column with a number or a string, and
  ``in`` / ``not in`` a list of them;
* ``and`` / ``or`` / ``not`` / ``~`` over those, and ``col.isnull()`` / ``notnull()`` /
  ``isna()`` / ``notna()``;
* columns as pandas holds them: int, float64 (an int column with nulls is float64) and
  strings; a missing value compares False, except ``!=`` and ``not in`` (True).

Anything else (column-to-column comparisons, arithmetic, ``@`` locals, Float32, dates,
booleans, a parse error...) raises :class:`~pipelines.validation.native.NotNative`
through ``NotNativeCondition``, and the expectation runs on GX.

    >>> import polars as pl
    >>> f = pl.DataFrame({"a": [1, 2, None], "s": ["x", "y", "z"]})
    >>> f.filter(condition_mask(f, {"row_condition": 'a > 1 | s == "z"', "condition_parser": "pandas"}))["s"].to_list()
    ['y', 'z']
"""

from __future__ import annotations

import ast
import functools
import operator
from collections.abc import Callable
from typing import Any

import polars as pl

from pipelines.validation.gx import import_gx


class NotNativeCondition(Exception):  # noqa: N818 - a routing signal, not an error
    """The condition is outside the subset translated exactly."""


GE_PARSERS = ("great_expectations", "great_expectations__experimental__")

_OPS: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
    ast.Eq: operator.eq, ast.NotEq: operator.ne,
}
_FLIP: dict[type[ast.cmpop], type[ast.cmpop]] = {ast.Lt: ast.Gt, ast.LtE: ast.GtE, ast.Gt: ast.Lt, ast.GtE: ast.LtE,
                                                  ast.Eq: ast.Eq, ast.NotEq: ast.NotEq}


def _need(cond: bool, reason: str) -> None:
    if not cond:
        raise NotNativeCondition(reason)


def has_condition(kw: dict[str, Any]) -> bool:
    return kw.get("row_condition") not in (None, "")


def query_string(kw: dict[str, Any]) -> str:
    """The ``DataFrame.query`` string GX's pandas engine filters with."""
    cond, parser = kw.get("row_condition"), kw.get("condition_parser")
    if isinstance(cond, str) and parser == "pandas":
        return cond
    _need(isinstance(cond, (str, dict)), f"row_condition {cond!r} runs on GX")
    import_gx()
    from great_expectations.expectations.row_conditions import (
        Condition,
        PassThroughCondition,
        deserialize_row_condition,
    )

    try:
        if isinstance(cond, str):
            _need(parser in GE_PARSERS, f"condition_parser {parser!r} runs on GX")
            from great_expectations.expectations.expectation import _convert_string_to_condition

            obj: Any = _convert_string_to_condition(cond)
        else:
            obj = deserialize_row_condition(cond)
    except NotNativeCondition:
        raise
    except Exception as exc:
        raise NotNativeCondition(f"row_condition: {exc}") from None
    if isinstance(obj, PassThroughCondition):
        return str(obj.pass_through_filter)
    _need(isinstance(obj, Condition), f"row_condition {cond!r} runs on GX")
    return str(_engine().condition_to_filter_clause(obj))


@functools.cache
def _engine() -> Any:
    import_gx()
    from great_expectations.execution_engine.pandas_execution_engine import PandasExecutionEngine

    return PandasExecutionEngine()


def condition_mask(frame: pl.DataFrame, kw: dict[str, Any]) -> pl.Expr:
    """True for the rows GX keeps under ``kw``'s row condition (never null)."""
    from pandas.core.computation.expr import _preparse
    from pandas.core.computation.parsing import clean_column_name

    query = query_string(kw)
    _need("@" not in query, "local variables (@) run on GX")
    try:
        tree = ast.parse(_preparse(query).strip(), mode="eval")
    except Exception as exc:
        raise NotNativeCondition(f"row_condition {query!r}: {exc}") from None
    names = {str(clean_column_name(c)): c for c in frame.columns}
    names.update({c: c for c in frame.columns if c.isidentifier()})
    return _Translator(frame, names).mask(tree.body)


class _Translator:
    def __init__(self, frame: pl.DataFrame, names: dict[str, str]) -> None:
        self.frame, self.names = frame, names

    def mask(self, node: ast.AST) -> pl.Expr:
        if isinstance(node, ast.BoolOp):
            parts = [self.mask(v) for v in node.values]
            return pl.all_horizontal(parts) if isinstance(node.op, ast.And) else pl.any_horizontal(parts)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.Invert)):
            return ~self.mask(node.operand)
        if isinstance(node, ast.Compare):
            left = node.left
            parts = []
            for op, right in zip(node.ops, node.comparators, strict=True):
                parts.append(self._compare(left, op, right))
                left = right
            return pl.all_horizontal(parts)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and not node.args and not node.keywords:
            name, kind = self._column(node.func.value)
            missing = self._missing(name, kind)
            if node.func.attr in ("isnull", "isna"):
                return missing
            if node.func.attr in ("notnull", "notna"):
                return ~missing
        raise NotNativeCondition(f"{ast.unparse(node)!r} is not translated")

    def _column(self, node: ast.AST) -> tuple[str, str]:
        _need(isinstance(node, ast.Name), f"{ast.unparse(node)!r} is not a column")
        assert isinstance(node, ast.Name)
        name = self.names.get(node.id)
        _need(name is not None, f"{node.id!r} is not a column")
        assert name is not None
        s = self.frame.get_column(name)
        dt = s.dtype
        if dt.is_integer():
            return name, "float" if s.null_count() else "int"
        if dt == pl.Float64:
            return name, "float"
        _need(dt == pl.String, f"column {name!r} ({dt}) in a row_condition runs on GX")
        return name, "str"

    def _missing(self, name: str, kind: str) -> pl.Expr:
        c = pl.col(name)
        return (c.is_null() | c.is_nan()) if self.frame.schema[name] == pl.Float64 else c.is_null()

    def _value(self, name: str, kind: str) -> pl.Expr:
        c = pl.col(name)
        return c.cast(pl.Float64).fill_nan(None) if kind == "float" else c

    @staticmethod
    def _literal(node: ast.AST) -> Any:
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            v = _Translator._literal(node.operand)
            _need(isinstance(v, (int, float)), "unary sign on a string")
            return -v if isinstance(node.op, ast.USub) else v
        _need(isinstance(node, ast.Constant), f"{ast.unparse(node)!r} is not a literal")
        assert isinstance(node, ast.Constant)
        v = node.value
        _need(isinstance(v, (int, float, str)) and not isinstance(v, bool), f"literal {v!r} runs on GX")
        return v

    def _compare(self, left: ast.AST, op: ast.cmpop, right: ast.AST) -> pl.Expr:
        if isinstance(op, (ast.In, ast.NotIn)):
            name, kind = self._column(left)
            _need(isinstance(right, (ast.List, ast.Tuple)), "in needs a list of literals")
            assert isinstance(right, (ast.List, ast.Tuple))
            values = [self._literal(v) for v in right.elts]
            self._same_kind(kind, values)
            v = self._value(name, kind)
            inside = functools.reduce(operator.or_, [v == pl.lit(x) for x in values], pl.lit(False))
            inside = inside.fill_null(False)
            return ~inside if isinstance(op, ast.NotIn) else inside
        _need(type(op) in _OPS, f"operator {type(op).__name__} runs on GX")
        if not isinstance(left, ast.Name):  # literal op column: flip it
            left, right, op = right, left, _FLIP[type(op)]()
        name, kind = self._column(left)
        value = self._literal(right)
        self._same_kind(kind, [value])
        out = _OPS[type(op)](self._value(name, kind), pl.lit(value))
        return out.fill_null(isinstance(op, ast.NotEq))  # pandas: a missing value is != anything

    @staticmethod
    def _same_kind(kind: str, values: list[Any]) -> None:
        if kind == "str":
            _need(all(isinstance(v, str) for v in values), "a string column against a number runs on GX")
        else:
            _need(all(isinstance(v, (int, float)) for v in values), "a numeric column against a string runs on GX")
            _need(all(abs(v) < 2**53 for v in values if isinstance(v, int)) or kind == "int",
                  "an integer beyond float precision runs on GX")
