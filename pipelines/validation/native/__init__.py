"""The native polars executor: the expectations it can run exactly as GX does.

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

The package, by concern: :mod:`.plan` (what runs natively, how a column is seen),
:mod:`.row_level` and :mod:`.aggregate` (the expectations by family), :mod:`.results` (GX
result shapes), :mod:`.executor` (the one ``select``, row conditions, isolation).
"""

from __future__ import annotations

from pipelines.validation.native.executor import validate
from pipelines.validation.native.plan import (
    ENGINE,
    PARTIAL,
    SAMPLE,
    SMALL_SET,
    SUPPORTED,
    NotNative,
    conditioned,
    supports,
)
from pipelines.validation.native.results import error_result, is_not_native
from pipelines.validation.native.row_level import unexpected_rows

__all__ = [
    "ENGINE",
    "PARTIAL",
    "SAMPLE",
    "SMALL_SET",
    "SUPPORTED",
    "NotNative",
    "conditioned",
    "error_result",
    "is_not_native",
    "supports",
    "unexpected_rows",
    "validate",
]
