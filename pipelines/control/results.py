"""The check-results table: the one record every check writes, whatever ran it.

A GX expectation on one region's table, a parity diff across regions, a drift test: each
produces :class:`CheckResult` rows, appended (Delta, append-only, partitioned by interval)
*before* the gate acts on them, so ``explain``, ``status`` and the UI read the same rows that
decided. Where they are appended follows who may write there: what a region's own steps found
(validation, feature coverage, a step's failure) goes to the region's prefix,
``_lockstep/regions/<region>/checks``; what the control plane decides on (reconciliation, with
the validation results it re-states) to ``_lockstep/check_results``, which no region key may write.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

import polars as pl

from pipelines.control.index import refresh_index
from pipelines.control.tables import CHECK_RESULTS_TABLE, REGION_RESULTS_TABLE
from pipelines.storage import OpenTables

CHECK_RESULTS = CHECK_RESULTS_TABLE.name
#: the table's columns (the registry's, :mod:`pipelines.control.tables`)
CHECK_RESULT_SCHEMA = CHECK_RESULTS_TABLE.schema


@dataclass
class CheckResult:
    """One result of one check. ``region`` is ``"*"`` for a check across regions."""

    stage: str  # "validation", "reconcile" or "delivery" (a region's step that failed)
    check_id: str
    check_type: str
    region: str
    table: str
    policy: str  # warn | quarantine | block
    success: bool
    observed: Any = None
    threshold: Any = None
    unexpected_count: int | None = None
    element_count: int | None = None
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    #: the Delta version of ``table`` the check read, and the suite it ran (validation
    #: evidence is bound to both; a result about another version is no evidence here)
    table_version: int | None = None
    suite_sha: str = ""
    batch: str = ""  # one validation of one table version: its results and its marker

    @property
    def blocking(self) -> bool:
        """A failed check whose policy is block stops certification."""
        return (not self.success) and self.policy == "block"

    def to_row(self, pipeline: str, interval: str, run_id: str) -> dict[str, Any]:
        row = {f.name: getattr(self, f.name) for f in fields(self)}  # shallow: the dicts are JSON-dumped below
        row.update(
            pipeline=pipeline,
            interval=interval,
            run_id=run_id,
            blocking=self.blocking,
            observed=json.dumps(self.observed, default=str),
            threshold=json.dumps(self.threshold, default=str),
            details=json.dumps(self.details, default=str),
            recorded_at=datetime.now(UTC),
        )
        return row


def record_results(
    root: str, pipeline: str, interval: str, run_id: str, results: list[CheckResult],
    storage_options: dict[str, str] | None = None, *, tables: OpenTables | None = None, region: str | None = None,
) -> int | None:
    """Append results to the check-results table in one commit; returns its version.
    ``region``: what that region's own steps found, to its prefix's table (else the control
    plane's; and the region's index of the interval is refreshed, :mod:`pipelines.control.index`);
    inside a step they are committed when it ends, with the step's other results (None returned).
    ``tables``: the decision's open control tables (the append commits through them)."""
    table = CHECK_RESULTS_TABLE if region is None else REGION_RESULTS_TABLE
    uri = table.uri(root, pipeline) if region is None else table.region_uri(root, pipeline, region)
    if not results:
        dt = table.open(uri, storage_options, tables=tables)
        return None if dt is None else dt.version()
    # partitioned by interval: a decision reads one interval's partition, whatever the history
    version = table.append(uri, [r.to_row(pipeline, interval, run_id) for r in results], storage_options,
                           tables=tables, defer=region is not None)
    if region is not None:  # the gate's index of the region's interval
        refresh_index(root, pipeline, region, interval, storage_options, run_id=run_id)
    return version


def load_results(
    root: str, pipeline: str, interval: str | None = None, run_id: str | None = None,
    storage_options: dict[str, str] | None = None, stage: str | tuple[str, ...] | None = None, *,
    tables: OpenTables | None = None, regions: Iterable[str] = (), control: bool = True,
) -> pl.DataFrame:
    """Recorded results, optionally of one interval, one run and one stage (empty frame when none),
    read from the tables' newest versions (``tables``: the decision's open control tables; one
    interval's results are read from its partition's files alone): the control plane's
    (``control``) and those ``regions`` published under their prefixes, one scan per table."""
    part = None if interval is None else {"interval": interval}
    uris = [(CHECK_RESULTS_TABLE, CHECK_RESULTS_TABLE.uri(root, pipeline))] if control else []
    uris += [(REGION_RESULTS_TABLE, REGION_RESULTS_TABLE.region_uri(root, pipeline, r)) for r in regions]
    frames = []
    for table, uri in uris:
        dt = table.open(uri, storage_options, tables=tables)
        if dt is None:
            continue
        # one run's results: the files of other runs are skipped by their logged run_id statistics
        lf = table.scan(dt, storage_options, partition=part, where=None if run_id is None else {"run_id": run_id})
        if stage is not None:
            lf = lf.filter(pl.col("stage").is_in([stage] if isinstance(stage, str) else list(stage)))
        frames.append(lf)
    if not frames:
        return CHECK_RESULTS_TABLE.empty()
    return pl.concat(frames, how="vertical_relaxed").collect()


def run_results(
    root: str, pipeline: str, interval: str, run_id: str, storage_options: dict[str, str] | None = None,
    *, tables: OpenTables | None = None, regions: Iterable[str] = (), control: bool = True,
) -> list[CheckResult]:
    """Every result ``run_id`` recorded about ``interval`` (the control plane's, ``control``,
    and those of ``regions``)."""
    return rows_to_results(load_results(root, pipeline, interval, run_id, storage_options, tables=tables,
                                        regions=regions, control=control))


def _loads(text: str | None, empty: Any) -> Any:
    """A recorded JSON value (``empty`` when none); the common trivial values without the parser."""
    if not text or text == "null":
        return None if empty is None else type(empty)()
    if text == "{}":
        return {}
    return json.loads(text)


def rows_to_results(df: pl.DataFrame) -> list[CheckResult]:
    """Recorded rows back into :class:`CheckResult` objects."""
    return [
        CheckResult(
            stage=r["stage"], check_id=r["check_id"], check_type=r["check_type"], region=r["region"],
            table=r["table"], policy=r["policy"], success=r["success"], observed=_loads(r["observed"], None),
            threshold=_loads(r["threshold"], None), unexpected_count=r["unexpected_count"],
            element_count=r["element_count"], message=r["message"] or "", details=_loads(r["details"], {}),
            table_version=r.get("table_version"), suite_sha=r.get("suite_sha") or "", batch=r.get("batch") or "",
        )
        for r in df.iter_rows(named=True)
    ]


def record_failure(
    root: str, pipeline: str, interval: str, run_id: str, region: str, step: str, error: BaseException,
    storage_options: dict[str, str] | None = None,
) -> None:
    """Record that ``region``'s ``step`` failed in ``run_id``, with its error, under the
    region's prefix: what the reconciliation names when the region delivers nothing. Best
    effort: a region whose control-plane prefix is unreachable too leaves no record, and the
    reconciliation then says what it has no evidence of."""
    import logging

    message = f"{step} failed: {type(error).__name__}: {error}".replace("\n", " ")
    result = CheckResult(stage="delivery", check_id=f"delivery.{step}", check_type="delivery", region=region,
                         table="*", policy="block", success=False, message=message[:1000])
    try:
        record_results(root, pipeline, interval, run_id, [result], storage_options, region=region)
    except Exception as exc:  # the step's own error is what the caller raises
        logging.getLogger(__name__).warning("%s: %s's failure of %s could not be recorded: %s", pipeline, region,
                                            step, exc)
