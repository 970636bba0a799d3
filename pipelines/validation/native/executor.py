"""The executor: every planned expectation's expressions in one lazy ``select``.

Expectations are grouped by row condition (one pass over the rows each keeps); common
subexpressions are shared (one sort per column serves every quantile and the median). If the
select fails, each expectation runs alone so one bad expression fails only its own result.
"""

from __future__ import annotations

import traceback
from typing import Any

import polars as pl

from pipelines.validation.conditions import has_condition
from pipelines.validation.native.aggregate import _agg_plan
from pipelines.validation.native.plan import (
    ENGINE,
    MAP_TYPES,
    SUPPORTED,
    NotNative,
    _need,
    _Plan,
    _resolve,
    conditioned,
)
from pipelines.validation.native.results import _finish, error_result
from pipelines.validation.native.row_level import _map_plan
from pipelines.validation.suites import Expectation


def _plan(frame: pl.DataFrame, e: Expectation, positions: list[int] | None = None) -> _Plan:
    _need(e.type in SUPPORTED, f"{e.type} has no native implementation")
    kw = _resolve(e)
    tag = f"e{e.index}"
    return _map_plan(frame, e, kw, tag, positions) if e.type in MAP_TYPES else _agg_plan(frame, e, kw, tag)


def _condition_key(e: Expectation) -> str | None:
    import json

    if not has_condition(e.kwargs):
        return None
    return json.dumps([e.kwargs.get("row_condition"), e.kwargs.get("condition_parser")], sort_keys=True, default=str)


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
