"""The control tables' one schema registry and the one way to append to and scan them.

Every append-only table under ``<control_root>/<pipeline>/_lockstep/`` is a
:class:`ControlTable` registered here by name: its polars schema, its partitioning, and
whether its rows carry the Delta version of the commit that holds them (``ordered``: the
decision log, folded in that order). Writers and readers go through the table's methods,
which sit on what :mod:`pipelines.storage` offers (:class:`~pipelines.storage.OpenTables`,
:func:`~pipelines.storage.append_in_order`, :func:`~pipelines.storage.scan_partition`), so
"where is a decision written, and how" has one answer.

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
from typing import Any

import polars as pl
from deltalake import DeltaTable

from pipelines.storage import (
    OpenTables,
    append_in_order,
    decision_tables,
    lockstep_uri,
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

    def uri(self, control_root: str, pipeline: str) -> str:
        """Where the table lives for one pipeline."""
        return lockstep_uri(control_root, pipeline, self.name)

    def frame(self, rows: Iterable[Mapping[str, Any]]) -> pl.DataFrame:
        """Rows in the table's schema."""
        return pl.DataFrame(list(rows), schema=self.schema)

    def empty(self) -> pl.DataFrame:
        """No rows, in the table's schema (what a read of a table not created yet returns)."""
        return pl.DataFrame(schema=self.schema)

    def append(self, uri: str, rows: pl.DataFrame | Iterable[Mapping[str, Any]], storage_options: Options = None,
               *, tables: OpenTables | None = None) -> int:
        """Append rows in one commit (through ``tables``: the decision's open control tables,
        else those of the decision in progress, else new ones); returns the new version."""
        if self.ordered:
            raise TypeError(f"{self.name}: rows of an ordered table carry their commit; use append_in_order")
        frame = rows if isinstance(rows, pl.DataFrame) else self.frame(rows)
        tables = tables or decision_tables(storage_options)
        return tables.append(uri, frame, partition_by=list(self.partition_by) or None)

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


def register(name: str, schema: pl.Schema, *, partition_by: Iterable[str] = (), ordered: bool = False
             ) -> ControlTable:
    """Add a control table to the registry (once per name)."""
    if name in CONTROL_TABLES:
        raise ValueError(f"control table {name!r} is registered already")
    table = ControlTable(name, schema, tuple(partition_by), ordered)
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

#: every result of every check (validation and reconciliation), per interval
CHECK_RESULTS_TABLE = register("check_results", pl.Schema({
    "pipeline": pl.String(), "interval": pl.String(), "run_id": pl.String(), "stage": pl.String(),
    "check_id": pl.String(), "check_type": pl.String(), "region": pl.String(), "table": pl.String(),
    "policy": pl.String(), "success": pl.Boolean(), "blocking": pl.Boolean(), "observed": pl.String(),
    "threshold": pl.String(), "unexpected_count": pl.Int64(), "element_count": pl.Int64(), "message": pl.String(),
    "details": pl.String(), "recorded_at": UTC_TIME, "table_version": pl.Int64(), "suite_sha": pl.String(),
    "batch": pl.String(),
}), partition_by=["interval"])

#: the profiles regions publish about the table versions they wrote, per interval
EVIDENCE_TABLE = register("evidence", pl.Schema({
    "pipeline": pl.String(), "interval": pl.String(), "region": pl.String(), "layer": pl.String(),
    "table": pl.String(), "version": pl.Int64(), "fingerprint": pl.Int64(), "plan_hash": pl.String(),
    "run_id": pl.String(), "recorded_at": UTC_TIME, "summary": pl.String(), "hist": pl.Binary(),
    "keyed": pl.Binary(),
}), partition_by=["interval"])

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
    "evaluated": pl.String(),
}), ordered=True)

#: a candidate model version's shadow scores, one row per (model version, region, interval):
#: its ROC AUC beside the release in force's on the same certified rows, and the PSI between them
RELEASE_EVALUATIONS_TABLE = register("release_evaluations", pl.Schema({
    "pipeline": pl.String(), "model_name": pl.String(), "model_version": pl.String(), "region": pl.String(),
    "interval": pl.String(), "generation_id": pl.String(), "rows": pl.Int64(), "positives": pl.Int64(),
    "roc_auc": pl.Float64(), "score_mean": pl.Float64(), "score_hash": pl.String(),
    "baseline_release": pl.String(), "baseline_version": pl.String(), "baseline_roc_auc": pl.Float64(),
    "baseline_mean": pl.Float64(), "psi": pl.Float64(), "who": pl.String(), "recorded_at": UTC_TIME,
}))
