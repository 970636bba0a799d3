"""Great Expectations' own pandas engine: the reference, and the home of every expectation
type the polars executor does not run.

GX is imported on first use (importing it costs seconds), through
:func:`pipelines.validation.gx.import_gx` (its usage statistics off). Its progress bars are
off through its own setting (tqdm's environment switch does not silence them). One ephemeral
context serves the whole process.
"""

from __future__ import annotations

import functools
from typing import Any

import polars as pl

from pipelines.validation.gx import import_gx
from pipelines.validation.suites import Expectation


@functools.cache
def _context() -> Any:
    gx = import_gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    asset = ctx.data_sources.add_pandas("lockstep").add_dataframe_asset("frame")
    return asset.add_batch_definition_whole_dataframe("whole")


def to_pandas(frame: pl.DataFrame) -> Any:
    """The frame as pandas for GX: Arrow-backed columns, no copy per expectation."""
    return frame.to_pandas(use_pyarrow_extension_array=False)


def _flat_exception_info(info: dict[str, Any]) -> dict[str, Any]:
    """GX reports a metric's failure keyed by the metric's id; give it the flat shape of an
    ``ExpectationValidationResult.exception_info`` (first failure's message and traceback)."""
    if "raised_exception" in info:
        return info
    inner = [v for v in info.values() if isinstance(v, dict)]
    if not inner:
        return {"raised_exception": False, "exception_traceback": None, "exception_message": None}
    first = inner[0]
    return {"raised_exception": True, "exception_traceback": first.get("exception_traceback"),
            "exception_message": first.get("exception_message")}


def validate(frame: pl.DataFrame, expectations: list[Expectation], suite_name: str = "lockstep",
             result_format: str = "SUMMARY") -> list[dict[str, Any]]:
    """Run ``expectations`` with GX over ``frame``; GX's result dicts, in order."""
    if not expectations:
        return []
    import_gx()
    from great_expectations.core.expectation_suite import ExpectationSuite
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    batch_definition = _context()

    def suite_of(es: list[Expectation]) -> Any:
        return ExpectationSuite(name=suite_name, expectations=[
            ExpectationConfiguration(type=e.type, kwargs=dict(e.kwargs), meta={**e.meta, "lockstep_index": e.index})
            for e in es])

    batch = batch_definition.get_batch(batch_parameters={"dataframe": to_pandas(frame)})
    try:
        results = batch.validate(suite_of(expectations), result_format=result_format).to_json_dict()["results"]
    except Exception:  # GX failed the whole suite (e.g. a suite parameter without a value): isolate
        results = []
        for e in expectations:
            try:
                results += batch.validate(suite_of([e]), result_format=result_format).to_json_dict()["results"]
            except Exception as exc:
                results.append(_error(e, exc))
    result = {"results": results}
    by_index = {}
    for r in result["results"]:  # GX may reorder results: give them back in the suite's order
        cfg = r["expectation_config"]
        cfg["kwargs"].pop("batch_id", None)
        by_index[cfg["meta"].pop("lockstep_index")] = r
        r.setdefault("meta", {})["engine"] = "gx"
        r["exception_info"] = _flat_exception_info(r.get("exception_info") or {})
    return [by_index[e.index] for e in expectations]


def _error(e: Expectation, exc: Exception) -> dict[str, Any]:
    return {"success": False, "result": {}, "meta": {},
            "expectation_config": {"type": e.type, "kwargs": dict(e.kwargs), "meta": {**e.meta, "lockstep_index": e.index}},
            "exception_info": {"raised_exception": True, "exception_traceback": None,
                               "exception_message": f"{type(exc).__name__}: {exc}"}}


def unexpected_index(frame: pl.DataFrame, e: Expectation) -> list[int]:
    """Row positions GX finds unexpected for a row-level expectation (its COMPLETE result)."""
    [r] = validate(frame, [e], result_format="COMPLETE")
    return [int(i) for i in (r.get("result") or {}).get("unexpected_index_list") or []]
