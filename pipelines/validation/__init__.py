"""Validation: Great Expectations suites per region and table, with warn / quarantine / block.

:func:`validate_region` is the runner's entry point. For each table of the requested layers
that has a suite (``expectations/<suite>.json``), it checks the suite against the table's
schema (before reading data), reads the interval's partition once, runs the suite with the
spec's engine, applies the policies and records every result under the region's prefix
(``_lockstep/regions/<region>/checks``):

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

from pipelines.control.results import CheckResult, record_results
from pipelines.errors import ValidationStepError
from pipelines.privacy import Masker
from pipelines.spec import Interval, PipelineSpec, TableSpec
from pipelines.storage import interval_app_id, open_table, read_table, write_interval
from pipelines.text import shown
from pipelines.validation import native
from pipelines.validation.event_time import REASON as OUTSIDE_REASON
from pipelines.validation.event_time import outside_delivery_interval
from pipelines.validation.suites import (
    Expectation,
    Suite,
    check_columns,
    current_suite,
    load_suite,
    validated_tables,
)

__all__ = ["run_suite", "validate_frame", "validate_region", "load_suite"]

QUARANTINE_COLUMNS = ["_check_ids", "_reason", "_run_id"]
#: the check id a row quarantined for its event time carries in ``_check_ids``
OUTSIDE_ID = "event_time_in_interval"


def run_suite(frame: pl.DataFrame, expectations: list[Expectation], engine: str = "auto") -> list[dict[str, Any]]:
    """GX-format results of ``expectations`` over ``frame``, in the suite's order.

    ``gx`` runs GX's pandas engine; ``polars`` the native executor, where an expectation it
    cannot run exactly (see ``native.NotNative``) becomes that expectation's error
    result; ``auto`` runs those on GX instead. One expectation never fails the others."""
    if engine not in ("auto", "polars", "gx"):
        raise ValidationStepError(f"unknown validation engine {engine!r}: use auto, polars or gx")
    if engine == "gx":
        from pipelines.validation import gx_engine

        return gx_engine.validate(frame, expectations)
    results = native.validate(frame, expectations)
    other = [e for e, r in zip(expectations, results, strict=True) if native.is_not_native(r)]
    if other and engine == "auto":  # never silently pass what the native executor cannot run
        from pipelines.validation import gx_engine

        by_index = dict(zip((e.index for e in other), gx_engine.validate(frame, other), strict=True))
        results = [by_index.get(e.index, r) for e, r in zip(expectations, results, strict=True)]
    return results


def _message(e: Expectation, r: dict[str, Any]) -> str:
    res = r.get("result") or {}
    if r.get("exception_info", {}).get("raised_exception"):
        return f"could not run: {r['exception_info'].get('exception_message')}"
    if "unexpected_count" in res:
        return f"{res['unexpected_count']} of {res.get('element_count')} rows unexpected" + (
            f", e.g. {shown(res['partial_unexpected_list'][:3])}" if res.get("partial_unexpected_list") else "")
    return f"observed {shown(res.get('observed_value'))}"


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
    expectations reject (None when nothing is to be quarantined). An expectation that could
    not run at all rejects no row: its error result blocks instead (fail closed)."""
    results = run_suite(frame, suite.expectations, engine)
    failed_q = [e for e, r in zip(suite.expectations, results, strict=True)
                if e.policy == "quarantine" and not r["success"] and not _raised(r)]
    if not failed_q:
        return results, None
    mask = pl.any_horizontal([native.unexpected_rows(frame, e) for e in failed_q])
    return results, mask


def _shown(masker: Masker, table: TableSpec, suite: Suite, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``results`` as outputs may show them: a personal column's values hashed."""
    if not table.personal:
        return results
    return [masker.result(e.type, e.kwargs, r, table.personal) for e, r in zip(suite.expectations, results, strict=True)]


def _raised(r: dict[str, Any]) -> bool:
    info = r.get("exception_info") or {}
    return bool(info.get("raised_exception"))


def _quarantine(
    spec: PipelineSpec, interval: Interval, region: str, table: TableSpec, frame: pl.DataFrame,
    suite: Suite, results: list[dict[str, Any]], root: str | None, run_id: str, version: int,
    outside: pl.Expr | None = None, suite_rows: bool = True,
) -> tuple[int, int | None]:
    """Move the rows failed quarantine expectations reject (and those whose event time lies
    outside the delivery interval, ``outside``) and publish the profiles of both versions
    written; returns (rows moved, the table's new version or None). ``suite_rows``: the suite's
    failed quarantine expectations reject rows (False: none does, only ``outside`` moves rows)."""
    from pipelines.control import evidence as store
    from pipelines.control.evidence import publish_write

    failed_q = [e for e, r in zip(suite.expectations, results, strict=True)
                if e.policy == "quarantine" and not r["success"] and suite_rows]
    flagged = [(e.check_id, native.unexpected_rows(frame, e)) for e in failed_q]
    if outside is not None:
        flagged.append((OUTSIDE_ID, outside))
    if not flagged:
        return 0, None
    flags = frame.select([expr.alias(cid) for cid, expr in flagged])
    ids = pl.concat_list([pl.when(pl.col(cid)).then(pl.lit(cid)) for cid, _ in flagged]).list.drop_nulls()
    marked = frame.with_columns(flags.select(_check_ids=ids).to_series())
    bad = marked.filter(pl.col("_check_ids").list.len() > 0)
    if bad.is_empty():
        return 0, None
    opts = spec.region_options(region)
    part = interval.partition(table.partition_by)
    suite_reason = f"failed quarantine expectation(s) of suite {suite.name}"
    only_outside = pl.col("_check_ids").list.len() == 1
    in_window = pl.col("_check_ids").list.contains(OUTSIDE_ID)
    bad = bad.with_columns(
        _check_ids=pl.col("_check_ids").list.join(","),
        _reason=pl.when(in_window & only_outside).then(pl.lit(OUTSIDE_REASON))
        .when(in_window).then(pl.lit(f"{OUTSIDE_REASON}; {suite_reason}")).otherwise(pl.lit(suite_reason)),
        _run_id=pl.lit(run_id),
    )
    q_uri = spec.table_uri(region, "quarantine", table.name, root)
    q_ref = write_interval(q_uri, bad, partition=part, app_id=interval_app_id(spec.name, region, "quarantine", table.name, interval.key),
                           fingerprint=None, storage_options=opts, force=True)
    q_profile = publish_write(spec, region, table, "quarantine", interval, bad, q_ref, root=root, run_id=run_id)
    uri = spec.table_uri(region, table.layer, table.name, root)
    app_id = interval_app_id(spec.name, region, table.layer, table.name, interval.key)
    dt = open_table(uri, opts)
    kept_fp = dt.transaction_version(app_id) if dt is not None else None
    kept = marked.filter(pl.col("_check_ids").list.len() == 0).drop("_check_ids")
    # the cleaned partition keeps the ingest's fingerprint: an unchanged source is not re-landed
    ref = write_interval(uri, kept, partition=part, app_id=app_id, fingerprint=kept_fp, storage_options=opts, force=True)
    before = store.load(spec, [interval.key], root=root, region=region, table=table.name).at(
        region, table.layer, table.name, interval.key, version)
    publish_write(spec, region, table, table.layer, interval, kept, ref, root=root, run_id=run_id,
                  fingerprint=kept_fp, source=before.source if before is not None else None,
                  quarantine={"version": q_ref.version, "rows": bad.height, "totals": q_profile.totals,
                              "from_version": version})
    return bad.height, ref.version


def validate_region(
    spec: PipelineSpec, interval: Interval, region: str, *, layers: tuple[str, ...] | None = None,
    root: str | None = None, run_id: str = "",
) -> list[CheckResult]:
    """Validate one region's tables of ``layers`` for one interval; record and return results.

    Each table is validated at exactly the version its newest profile describes (the version
    the gate will judge), and every result is recorded bound to that version and the suite's
    hash, with a ``<table>.suite`` marker saying the whole suite ran there. When quarantine
    rewrites the table, the results are bound to the version it wrote."""
    import uuid

    from pipelines.control import evidence as store

    opts = spec.region_options(region)
    masker = Masker(spec, root)
    checks: list[CheckResult] = []
    docs: list[dict[str, Any]] = []
    todo: list[tuple[TableSpec, Suite]] = []
    for table in validated_tables(spec):  # every suite loads (and fails) before anything is read or written
        if layers is not None and table.layer not in layers:
            continue
        todo.append((table, current_suite(spec, table)))  # a missing suite is an error naming the file
    evidence = store.load(spec, [interval.key], root=root, region=region) if todo else None
    for table, suite in todo:
        uri = spec.table_uri(region, table.layer, table.name, root)
        assert evidence is not None
        profile = evidence.newest(region, table.layer, table.name, interval.key)
        if profile is None:
            if open_table(uri, opts) is None:
                continue  # nothing landed: the gate blocks on the missing profile
            raise ValidationStepError(
                f"{region}/{table.path}: no profile of {interval.key} in the evidence store; run its write step first",
                region=region, retryable=False)
        version = profile.version
        dt = open_table(uri, opts, version)
        if dt is None:
            raise ValidationStepError(f"{uri}: version {version} is not readable", region=region)
        check_columns(suite, [f.name for f in dt.schema().fields])
        frame = read_table(uri, version=version, partition=interval.partition(table.partition_by),
                           storage_options=opts).collect()
        results, mask = validate_frame(frame, suite, engine=spec.validation.engine)
        # what the check results and Data Docs show: personal values as keyed hashes only
        shown = _shown(masker, table, suite, results)
        table_checks = [_check(table, region, e, r) for e, r in zip(suite.expectations, shown, strict=True)]
        # a raw row whose event time lies beyond its delivery interval's tolerance
        late = outside_delivery_interval(spec, table, interval, region, frame)
        if late is not None:
            table_checks.append(late.check)
        moved, final = 0, version
        if mask is not None or (late is not None and late.mask is not None):
            moved, new_version = _quarantine(spec, interval, region, table, frame, suite, results, root, run_id, version,
                                             outside=None if late is None else late.mask, suite_rows=mask is not None)
            final = new_version if new_version is not None else version
        if moved:
            share = moved / max(frame.height, 1)
            cap = spec.validation.quarantine_cap
            table_checks.append(CheckResult(
                stage="validation", check_id=f"{table.name}.quarantine_cap", check_type="quarantine_cap",
                region=region, table=table.path, policy="block", success=share <= cap,
                observed=round(share, 6), threshold=cap, unexpected_count=moved, element_count=frame.height,
                message="" if share <= cap else f"{moved} of {frame.height} rows quarantined ({share:.2%} > cap {cap:.2%})",
            ))
        table_checks.append(CheckResult(
            stage="validation", check_id=f"{table.name}.suite", check_type="suite_run", region=region,
            table=table.path, policy="warn", success=True, observed=len(suite.expectations),
            element_count=frame.height, message=f"suite {suite.name} ran on version {version}",
            details={"suite": suite.name, "validated_version": version, "quarantined": moved},
        ))
        batch = uuid.uuid4().hex[:12]
        for c in table_checks:
            c.table_version, c.suite_sha, c.batch = final, suite.sha, batch
        checks += table_checks
        docs.append({"table": table.path, "suite": suite.name, "suite_sha": suite.sha, "rows": frame.height,
                     "quarantined": moved, "results": shown})
    record_results(spec.control_root(root), spec.name, interval.key, run_id, checks, spec.control_options(),
                   region=region)
    if spec.validation.data_docs and docs:
        from pipelines.validation.docs import write_region_docs

        write_region_docs(spec.control_root(root), spec.name, interval.key, region, docs, spec.control_options())
    return checks
