"""Validation: Great Expectations suites per region and table, with warn / quarantine / block.

:func:`validate_region` is the runner's entry point. For each table of the requested layers
that has a suite (``expectations/<suite>.json``), it checks the suite against the table's
schema (before reading data), reads the interval's partition once, runs the suite with the
spec's engine, applies the policies and records every result in ``_lockstep/check_results``:

* ``warn`` - the result is recorded, nothing else;
* ``quarantine`` - failing rows move to ``<region>/quarantine/<table>`` (with the check ids,
  the reason and the run id) and the table's partition is rewritten without them; more than
  ``validation.quarantine_cap`` of the rows quarantined turns into a block;
* ``block`` - the region's table cannot be certified for that interval (the gate reads it).

Engines: ``polars`` (the native executor; every expectation must be one it supports),
``gx`` (Great Expectations' pandas engine) and ``auto`` (polars for what it supports, GX
for the rest, merged into one GX-format result).
"""

from __future__ import annotations

from typing import Any

import polars as pl

from pipelines.checks import CheckResult, record_results
from pipelines.errors import ValidationStepError
from pipelines.spec import Interval, PipelineSpec, TableSpec
from pipelines.storage import interval_app_id, open_table, read_table, table_uri, write_interval
from pipelines.validation import polars_engine
from pipelines.validation.suites import Expectation, Suite, check_columns, load_suite, suite_path

__all__ = ["run_suite", "validate_frame", "validate_region", "load_suite"]

QUARANTINE_COLUMNS = ["_check_ids", "_reason", "_run_id"]


def run_suite(frame: pl.DataFrame, expectations: list[Expectation], engine: str = "auto") -> list[dict[str, Any]]:
    """GX-format results of ``expectations`` over ``frame``, in the suite's order."""
    if engine == "gx":
        from pipelines.validation import gx_engine

        return gx_engine.validate(frame, expectations)
    native = [e for e in expectations if polars_engine.supports(e)]
    other = [e for e in expectations if not polars_engine.supports(e)]
    if other and engine == "polars":
        names = ", ".join(f"expectations[{e.index}] ({e.type})" for e in other)
        raise ValidationStepError(f"engine polars does not run {names}; use engine auto or gx")
    by_index = {e.index: r for e, r in zip(native, polars_engine.validate(frame, native), strict=True)}
    if other:  # never silently pass what the native executor cannot run
        from pipelines.validation import gx_engine

        by_index.update({e.index: r for e, r in zip(other, gx_engine.validate(frame, other), strict=True)})
    return [by_index[e.index] for e in expectations]


def _message(e: Expectation, r: dict[str, Any]) -> str:
    res = r.get("result") or {}
    if r.get("exception_info", {}).get("raised_exception"):
        return f"could not run: {r['exception_info'].get('exception_message')}"
    if "unexpected_count" in res:
        return f"{res['unexpected_count']} of {res.get('element_count')} rows unexpected" + (
            f", e.g. {res['partial_unexpected_list'][:3]}" if res.get("partial_unexpected_list") else "")
    return f"observed {res.get('observed_value')!r}"


def _check(table: TableSpec, region: str, e: Expectation, r: dict[str, Any]) -> CheckResult:
    res = r.get("result") or {}
    return CheckResult(
        stage="validation", check_id=f"{table.name}.{e.check_id}", check_type=e.type, region=region,
        table=table.path, policy=e.policy, success=bool(r["success"]), observed=res.get("observed_value"),
        threshold={k: v for k, v in e.kwargs.items() if k != "column"}, unexpected_count=res.get("unexpected_count"),
        element_count=res.get("element_count"), message="" if r["success"] else _message(e, r),
        details={"engine": (r.get("meta") or {}).get("engine"), "result": res},
    )


def validate_frame(
    frame: pl.DataFrame, suite: Suite, *, engine: str = "auto",
) -> tuple[list[dict[str, Any]], pl.Expr | None]:
    """Results of ``suite`` over ``frame`` and the mask of rows its failed quarantine
    expectations reject (None when nothing is to be quarantined)."""
    results = run_suite(frame, suite.expectations, engine)
    failed_q = [e for e, r in zip(suite.expectations, results, strict=True) if e.policy == "quarantine" and not r["success"]]
    if not failed_q:
        return results, None
    mask = pl.any_horizontal([polars_engine.unexpected_rows(frame, e) for e in failed_q])
    return results, mask


def _quarantine(
    spec: PipelineSpec, interval: Interval, region: str, table: TableSpec, frame: pl.DataFrame,
    suite: Suite, results: list[dict[str, Any]], root: str, run_id: str,
) -> int:
    """Move the rows failed quarantine expectations reject; returns how many moved."""
    failed_q = [e for e, r in zip(suite.expectations, results, strict=True) if e.policy == "quarantine" and not r["success"]]
    flags = frame.select([polars_engine.unexpected_rows(frame, e).alias(e.check_id) for e in failed_q])
    ids = pl.concat_list([pl.when(pl.col(e.check_id)).then(pl.lit(e.check_id)) for e in failed_q]).list.drop_nulls()
    marked = frame.with_columns(flags.select(_check_ids=ids).to_series())
    bad = marked.filter(pl.col("_check_ids").list.len() > 0)
    if bad.is_empty():
        return 0
    opts = spec.storage.resolved_options()
    part = interval.partition(table.partition_by)
    bad = bad.with_columns(
        _check_ids=pl.col("_check_ids").list.join(","),
        _reason=pl.lit(f"failed quarantine expectation(s) of suite {suite.name}"),
        _run_id=pl.lit(run_id),
    )
    q_uri = table_uri(root, spec.name, region, "quarantine", table.name)
    write_interval(q_uri, bad, partition=part, app_id=interval_app_id(spec.name, region, "quarantine", table.name, interval.key),
                   fingerprint=None, storage_options=opts, force=True)
    uri = table_uri(root, spec.name, region, table.layer, table.name)
    app_id = interval_app_id(spec.name, region, table.layer, table.name, interval.key)
    dt = open_table(uri, opts)
    kept_fp = dt.transaction_version(app_id) if dt is not None else None
    # the cleaned partition keeps the ingest's fingerprint: an unchanged source is not re-landed
    write_interval(uri, marked.filter(pl.col("_check_ids").list.len() == 0).drop("_check_ids"), partition=part,
                   app_id=app_id, fingerprint=kept_fp, storage_options=opts, force=True)
    return bad.height


def validate_region(
    spec: PipelineSpec, interval: Interval, region: str, *, layers: tuple[str, ...] | None = None,
    root: str | None = None, run_id: str = "",
) -> list[CheckResult]:
    """Validate one region's tables of ``layers`` for one interval; record and return results."""
    root_ = spec.root(root)
    opts = spec.storage.resolved_options()
    suites_dir = spec.suites_dir()
    checks: list[CheckResult] = []
    docs: list[dict[str, Any]] = []
    for table in spec.tables:
        if table.layer == "quarantine" or (layers is not None and table.layer not in layers):
            continue
        path = suite_path(suites_dir, table.suite_name)
        if not path.exists():
            if table.suite is not None:
                raise ValidationStepError(f"{path}: suite {table.suite!r} named by table {table.name!r} does not exist")
            continue
        suite = load_suite(path)
        uri = table_uri(root_, spec.name, region, table.layer, table.name)
        dt = open_table(uri, opts)
        if dt is None:
            continue
        check_columns(suite, [f.name for f in dt.schema().fields])
        frame = read_table(uri, partition=interval.partition(table.partition_by), storage_options=opts).collect()
        results, mask = validate_frame(frame, suite, engine=spec.validation.engine)
        table_checks = [_check(table, region, e, r) for e, r in zip(suite.expectations, results, strict=True)]
        moved = 0
        if mask is not None:
            moved = _quarantine(spec, interval, region, table, frame, suite, results, root_, run_id)
        if moved:
            share = moved / max(frame.height, 1)
            cap = spec.validation.quarantine_cap
            table_checks.append(CheckResult(
                stage="validation", check_id=f"{table.name}.quarantine_cap", check_type="quarantine_cap",
                region=region, table=table.path, policy="block", success=share <= cap,
                observed=round(share, 6), threshold=cap, unexpected_count=moved, element_count=frame.height,
                message="" if share <= cap else f"{moved} of {frame.height} rows quarantined ({share:.2%} > cap {cap:.2%})",
            ))
        checks += table_checks
        docs.append({"table": table.path, "suite": suite.name, "suite_sha": suite.sha, "rows": frame.height,
                     "quarantined": moved, "results": results})
    record_results(root_, spec.name, interval.key, run_id, checks, opts)
    if spec.validation.data_docs and docs:
        from pipelines.validation.docs import write_region_docs

        write_region_docs(root_, spec.name, interval.key, region, docs)
    return checks
