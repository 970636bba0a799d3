"""The control tables' one schema registry and the one way to append to and scan them.

Every append-only table under ``<control_root>/<pipeline>/_lockstep/`` is a
:class:`ControlTable` registered here by name: its polars schema, its partitioning, and
whether its rows carry the Delta version of the commit that holds them (``ordered``: the
decision log, folded in that order). Writers and readers go through the table's methods,
which sit on what :mod:`pipelines.storage` offers (:class:`~pipelines.storage.OpenTables`,
:func:`~pipelines.storage.append_in_order`, :func:`~pipelines.storage.scan_partition`), so
"where is a decision written, and how" has one answer.

A table a region publishes (``per_region``: its evidence, its own check results) has one
Delta table per region under that region's prefix,
``<control_root>/<pipeline>/_lockstep/regions/<region>/<name>`` (:meth:`ControlTable.region_uri`):
a region's key may write there and nowhere else in the control plane; the decision log,
the check results the gate decided on, releases and approvals are the control plane's
alone. A reader takes one scan per region.

Adding a table is a few lines: ``RELEASES_TABLE = register("releases", pl.Schema({...}))``.

Example::

    table = CHECK_RESULTS_TABLE
    uri = table.uri(control_root, "fraud_features")
    version = table.append(uri, rows, storage_options)
    frame = table.scan(table.open(uri, storage_options), storage_options,
                       partition={"interval": "2026-01-01"}).collect()
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, overload

import polars as pl
from deltalake import DeltaTable

from pipelines.storage import (
    OpenTables,
    append_in_order,
    decision_tables,
    lockstep_uri,
    region_lockstep_uri,
    scan_partition,
)

Options = dict[str, str] | None


@dataclass(frozen=True)
class ControlTable:
    """One append-only control table: ``<control_root>/<pipeline>/_lockstep/<name>``."""

    name: str
    schema: pl.Schema
    #: the columns a new table is partitioned by (an existing table keeps its own)
    partition_by: tuple[str, ...] = ()
    #: rows carry the Delta version of their commit (``log_version``): appended in log order
    ordered: bool = False
    #: one table per region, under the region's prefix (written by that region alone)
    per_region: bool = False

    def uri(self, control_root: str, pipeline: str) -> str:
        """Where the table lives for one pipeline (a control-plane table)."""
        if self.per_region:
            raise TypeError(f"{self.name}: a table per region; use region_uri")
        return lockstep_uri(control_root, pipeline, self.name)

    def region_uri(self, control_root: str, pipeline: str, region: str) -> str:
        """Where one region's table lives (a ``per_region`` table)."""
        if not self.per_region:
            raise TypeError(f"{self.name}: a control-plane table; use uri")
        return region_lockstep_uri(control_root, pipeline, region, self.name)

    def frame(self, rows: Iterable[Mapping[str, Any]]) -> pl.DataFrame:
        """Rows in the table's schema."""
        return pl.DataFrame(list(rows), schema=self.schema)

    def empty(self) -> pl.DataFrame:
        """No rows, in the table's schema (what a read of a table not created yet returns)."""
        return pl.DataFrame(schema=self.schema)

    @overload
    def append(self, uri: str, rows: pl.DataFrame | Iterable[Mapping[str, Any]], storage_options: Options = None,
               *, tables: OpenTables | None = None, defer: Literal[False] = False) -> int: ...

    @overload
    def append(self, uri: str, rows: pl.DataFrame | Iterable[Mapping[str, Any]], storage_options: Options = None,
               *, tables: OpenTables | None = None, defer: bool) -> int | None: ...

    def append(self, uri: str, rows: pl.DataFrame | Iterable[Mapping[str, Any]], storage_options: Options = None,
               *, tables: OpenTables | None = None, defer: bool = False) -> int | None:
        """Append rows in one commit (through ``tables``: the decision's open control tables,
        else those of the decision in progress, else new ones); returns the new version.
        ``defer``: inside a block of open tables, commit them with the table's other deferred
        rows when the block ends or reads the table (:class:`~pipelines.storage.OpenTables`;
        returns None)."""
        if self.ordered:
            raise TypeError(f"{self.name}: rows of an ordered table carry their commit; use append_in_order")
        frame = rows if isinstance(rows, pl.DataFrame) else self.frame(rows)
        tables = tables or decision_tables(storage_options)
        return tables.append(uri, frame, partition_by=list(self.partition_by) or None, defer=defer)

    def append_in_order(self, uri: str, build: Callable[[int], Mapping[str, Any]], storage_options: Options = None,
                        *, tables: OpenTables | None = None) -> int:
        """Append the one row ``build(v)`` makes as exactly commit ``v`` (its ``log_version``);
        a lost race builds it again for the next version. Returns the version written."""
        return append_in_order(uri, lambda v: self.frame([build(v)]), storage_options,
                               tables=tables or decision_tables(storage_options),
                               partition_by=list(self.partition_by) or None)

    def open(self, uri: str, storage_options: Options = None, *, tables: OpenTables | None = None
             ) -> DeltaTable | None:
        """The table at its newest committed version, or None when it was never written."""
        return (tables or decision_tables(storage_options)).get(uri)

    def scan(self, dt: DeltaTable | None, storage_options: Options = None, *,
             partition: dict[str, str] | None = None, where: dict[str, str | int] | None = None) -> pl.LazyFrame:
        """A lazy scan of the opened table (one partition, or all of it) at the version it
        holds; no table yet reads as no rows. ``where``: equalities on data columns."""
        if dt is None:
            return self.empty().lazy()
        return scan_partition(dt, partition or {}, storage_options, where=where)


#: every control table, by name
CONTROL_TABLES: dict[str, ControlTable] = {}


def register(name: str, schema: pl.Schema, *, partition_by: Iterable[str] = (), ordered: bool = False,
             per_region: bool = False) -> ControlTable:
    """Add a control table to the registry (once per name)."""
    if name in CONTROL_TABLES:
        raise ValueError(f"control table {name!r} is registered already")
    table = ControlTable(name, schema, tuple(partition_by), ordered, per_region)
    CONTROL_TABLES[name] = table
    return table


UTC_TIME = pl.Datetime("us", "UTC")

#: the decision log: one commit per decision (gate, override, rollback), folded in commit order
CERTIFICATIONS_TABLE = register("certifications", pl.Schema({
    "decision_id": pl.String(), "pipeline": pl.String(), "interval": pl.String(), "interval_start": UTC_TIME,
    "generation_id": pl.String(), "generation": pl.String(), "status": pl.String(), "kind": pl.String(),
    "reasons": pl.String(), "reason": pl.String(), "who": pl.String(), "decided_at": UTC_TIME,
    "run_id": pl.String(), "spec_hash": pl.String(), "code_version": pl.String(), "expires_at": UTC_TIME,
    "suites_hash": pl.String(), "target": pl.String(), "log_version": pl.Int64(), "bindings": pl.String(),
    "digest": pl.String(),
}), ordered=True)

#: every result of every check the control plane ran or decided on (reconciliation, and the
#: validation results a reconciliation re-states), per interval; written by the control plane alone
CHECK_RESULT_COLUMNS = pl.Schema({
    "pipeline": pl.String(), "interval": pl.String(), "run_id": pl.String(), "stage": pl.String(),
    "check_id": pl.String(), "check_type": pl.String(), "region": pl.String(), "table": pl.String(),
    "policy": pl.String(), "success": pl.Boolean(), "blocking": pl.Boolean(), "observed": pl.String(),
    "threshold": pl.String(), "unexpected_count": pl.Int64(), "element_count": pl.Int64(), "message": pl.String(),
    "details": pl.String(), "recorded_at": UTC_TIME, "table_version": pl.Int64(), "suite_sha": pl.String(),
    "batch": pl.String(),
})
CHECK_RESULTS_TABLE = register("check_results", CHECK_RESULT_COLUMNS, partition_by=["interval"])

#: what a region's own steps found (validation, feature coverage, a step's failure), per interval:
#: the check-results columns, one table per region under its prefix
REGION_RESULTS_TABLE = register("checks", CHECK_RESULT_COLUMNS, partition_by=["interval"], per_region=True)

#: the profiles regions publish about the table versions they wrote, per interval, one table
#: per region under its prefix
EVIDENCE_TABLE = register("evidence", pl.Schema({
    "pipeline": pl.String(), "interval": pl.String(), "region": pl.String(), "layer": pl.String(),
    "table": pl.String(), "version": pl.Int64(), "fingerprint": pl.Int64(), "plan_hash": pl.String(),
    "run_id": pl.String(), "recorded_at": UTC_TIME, "summary": pl.String(), "hist": pl.Binary(),
    "keyed": pl.Binary(),
}), partition_by=["interval"], per_region=True)

#: the versions ``lockstep maintain`` removed files of: one row per table and run
MAINTENANCE_TABLE = register("maintenance", pl.Schema({
    "uri": pl.String(), "ran_at": UTC_TIME, "version": pl.Int64(), "kept_versions": pl.String(),
    "files_removed": pl.Int64(), "rollback_window": pl.String(),
}))

#: the release log: one commit per release decision (promote, rollback, a refused promotion) and
#: per scoring claim (the release an interval is scored with, fixed by its first scorer), folded
#: in commit order; ``interval``/``region``: a claim's; ``replaces``: the release a decision
#: replaced in force; ``reasons``: a refusal's (JSON)
RELEASES_TABLE = register("releases", pl.Schema({
    "release_id": pl.String(), "pipeline": pl.String(), "model_name": pl.String(), "model_version": pl.String(),
    "feature_version": pl.String(), "plan_hash": pl.String(), "suites": pl.String(), "generations": pl.String(),
    "effective_from": pl.String(), "effective_start": UTC_TIME, "who": pl.String(), "why": pl.String(),
    "kind": pl.String(), "target": pl.String(), "released_at": UTC_TIME, "log_version": pl.Int64(),
    "reasons": pl.String(), "interval": pl.String(), "region": pl.String(), "replaces": pl.String(),
    "evaluated": pl.String(), "approval": pl.String(),
}), ordered=True)

#: the approvals log: one commit per event of a request for an override, rollback or release
#: (``request``, ``approve``, ``reject``), bound to exactly what it decides; folded in commit order
APPROVALS_TABLE = register("approvals", pl.Schema({
    "request_id": pl.String(), "pipeline": pl.String(), "event": pl.String(), "action": pl.String(),
    "interval": pl.String(), "generation_id": pl.String(), "digest": pl.String(), "target": pl.String(),
    "regions": pl.String(), "who": pl.String(), "roles": pl.String(), "reason": pl.String(),
    "params": pl.String(), "at": UTC_TIME, "expires_at": UTC_TIME, "log_version": pl.Int64(),
}), ordered=True)

#: the decisions the audit export sent (one OpenLineage RunEvent each): log, log version, run id
AUDIT_EXPORTS_TABLE = register("audit_exports", pl.Schema({
    "log": pl.String(), "log_version": pl.Int64(), "run_id": pl.String(), "exported_at": UTC_TIME,
}))

#: a candidate model version's shadow scores, one row per (model version, region, interval):
#: its ROC AUC beside the release in force's on the same certified rows, and the PSI between them
RELEASE_EVALUATIONS_TABLE = register("release_evaluations", pl.Schema({
    "pipeline": pl.String(), "model_name": pl.String(), "model_version": pl.String(), "region": pl.String(),
    "interval": pl.String(), "generation_id": pl.String(), "rows": pl.Int64(), "positives": pl.Int64(),
    "roc_auc": pl.Float64(), "score_mean": pl.Float64(), "score_hash": pl.String(),
    "baseline_release": pl.String(), "baseline_version": pl.String(), "baseline_roc_auc": pl.Float64(),
    "baseline_mean": pl.Float64(), "psi": pl.Float64(), "who": pl.String(), "recorded_at": UTC_TIME,
}))

#: the erasure log: one commit per event of an erasure (``erase``: one region's rows deleted,
#: per table how many and the versions before and after; ``recertify``: the affected
#: intervals' new decisions; ``removal``: ``lockstep maintain`` deleted the older files),
#: folded in commit order. The subject's values are never stored: ``values_digest`` binds them
ERASURES_TABLE = register("erasures", pl.Schema({
    "erasure_id": pl.String(), "pipeline": pl.String(), "event": pl.String(), "region": pl.String(),
    "column": pl.String(), "values_digest": pl.String(), "values_count": pl.Int64(), "who": pl.String(),
    "reason": pl.String(), "request_id": pl.String(), "approvers": pl.String(), "tables": pl.String(),
    "intervals": pl.String(), "requested_at": UTC_TIME, "at": UTC_TIME, "log_version": pl.Int64(),
}), ordered=True)
