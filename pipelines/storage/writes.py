"""Idempotent interval writes: replace exactly one interval's partition of a Delta table.

A write records a Delta *app transaction* whose id is
``lockstep/<pipeline>/<region>/<layer>/<table>/<interval>`` and whose version is a fingerprint
of the write's inputs. So:

* a retried or re-run write neither duplicates nor drops rows (the partition is replaced);
* a write whose inputs have not changed is skipped without a new table version (one INFO line);
* a write killed midway commits nothing: Delta's log only moves on a successful commit, so
  the table still reads at its previous version.
"""

from __future__ import annotations

import json
import logging
from typing import Any, TypeAlias

import polars as pl
import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import DeltaError

from pipelines.errors import StorageError
from pipelines.storage.conflicts import create_table, retry_on_conflict
from pipelines.storage.objects import _file_hashes, _written_files, file_digest, put_object
from pipelines.storage.tables import (
    TableRef,
    _predicate,
    open_table,
    partition_actions,
    partition_rows,
    remember_version,
    rows_in,
    sizes_in,
)

log = logging.getLogger(__name__)
Frame: TypeAlias = pl.DataFrame | pl.LazyFrame | pa.Table | pa.RecordBatchReader


def _with_partition(data: pl.DataFrame, partition: dict[str, str]) -> pl.DataFrame:
    missing = [k for k in partition if k not in data.columns]
    return data.with_columns([pl.lit(partition[k]).alias(k) for k in missing]) if missing else data


def _as_arrow(data: Frame, partition: dict[str, str]) -> pa.Table | pa.RecordBatchReader:
    if isinstance(data, pl.LazyFrame):
        data = data.collect()
    if isinstance(data, pl.DataFrame):
        return _with_partition(data, partition).to_arrow()
    return data


def _same_columns(dt: DeltaTable, frame: pl.DataFrame, partition: dict[str, str]) -> bool:
    """Does ``frame`` (partition columns aside) have exactly the table's columns and types?"""
    from deltalake import Schema as DeltaSchema

    def columns(fields: Any) -> dict[str, str]:
        return {f.name: str(f.type) for f in fields if f.name not in partition}

    try:
        incoming = DeltaSchema.from_arrow(frame.head(0).to_arrow().schema)
    except Exception:  # a type Delta cannot hold: let the general path report it
        return False
    return columns(incoming.fields) == columns(dt.schema().fields)


def _overwrite_partition(
    dt: DeltaTable, uri: str, frame: pl.DataFrame, partition: dict[str, str], props: CommitProperties,
    storage_options: dict[str, str] | None,
) -> dict[str, dict[str, Any]] | None:
    """Write the partition's file with polars' (multi-threaded) parquet writer, put it through
    deltalake's object store (:func:`put_object`: the same code on local disk and on S3), then
    commit it with Delta's own transaction, replacing the partition's files in that one commit.
    A file put but never committed (a killed task) is not part of any version.

    Returns the file put, hashed from the bytes put: ``{object path: {"sha256", "size"}}``
    (``{}`` when the frame has no rows: the partition is emptied). Only when the frame matches
    the table's schema exactly; returns None otherwise, and the caller takes
    ``write_deltalake`` with a schema merge."""
    import io
    import time
    import uuid

    from deltalake.transaction import AddAction, RemoveAction

    if not _same_columns(dt, frame, partition):
        return None
    data = frame.drop([k for k in partition if k in frame.columns])
    actions: list[AddAction | RemoveAction] = []
    written: dict[str, dict[str, Any]] = {}
    if data.height:
        rel = "/".join(f"{k}={v}" for k, v in partition.items()) + f"/part-00000-{uuid.uuid4()}-c000.zstd.parquet"
        buf = io.BytesIO()
        data.write_parquet(buf, compression="zstd")
        payload = buf.getvalue()
        written[rel] = file_digest(payload)
        size = put_object(uri, rel, payload, storage_options)
        actions.append(AddAction(rel, size, dict(partition), int(time.time() * 1000), True,
                                 json.dumps({"numRecords": data.height})))
    dt.create_write_transaction(
        actions, mode="overwrite", schema=dt.schema(), partition_by=list(partition),
        partition_filters=[(k, "=", v) for k, v in partition.items()], commit_properties=props,
    )
    return written


def write_interval(
    uri: str,
    data: Frame,
    *,
    partition: dict[str, str],
    app_id: str,
    fingerprint: int | None = None,
    storage_options: dict[str, str] | None = None,
    force: bool = False,
) -> TableRef:
    """Replace exactly ``partition`` of the table at ``uri`` with ``data``, idempotently.

    When the table already records ``app_id`` at ``fingerprint`` (the same inputs were written
    before), nothing is written unless ``force``. Columns new to the table are merged into its
    schema (a region whose schema drifted still lands, so reconciliation can see and block it).

    A commit that loses a race with a concurrent writer of the table is tried again (the write
    is idempotent: a retry re-reads the table, skips when the winner wrote the same inputs, else
    replaces the partition again); a conflict that outlives the retries names the table and
    the interval.
    """
    if isinstance(data, pl.LazyFrame):
        data = data.collect()  # computed once: a retry writes the same rows
    elif isinstance(data, pa.RecordBatchReader):
        data = data.read_all()  # a reader is consumed by the first attempt
    what = f"{uri}: write of {_predicate(partition)}"
    return retry_on_conflict(_write_interval_once, what)(
        uri, data, partition=partition, app_id=app_id, fingerprint=fingerprint, storage_options=storage_options,
        force=force)


def _write_interval_once(
    uri: str,
    data: Frame,
    *,
    partition: dict[str, str],
    app_id: str,
    fingerprint: int | None = None,
    storage_options: dict[str, str] | None = None,
    force: bool = False,
) -> TableRef:
    opts = storage_options or None
    dt = open_table(uri, storage_options)
    if dt is not None and fingerprint is not None and not force:
        if dt.transaction_version(app_id) == fingerprint:
            # a skip costs a log lookup, not a read: its files' hashes are in the profile published
            # when they were written (ensure_published hashes them only when it must re-publish)
            log.info("%s: %s unchanged (app transaction %s at fingerprint %d), skipped at version %d",
                     uri, _predicate(partition) or "table", app_id, fingerprint, dt.version())
            remember_version(uri, storage_options, dt)  # the step's reads of this version use it
            return TableRef(uri, dt.version(), partition_rows(dt, partition), partition, skipped=True)
    txn = [Transaction(app_id=app_id, version=fingerprint if fingerprint is not None else 0)]
    props = CommitProperties(app_transactions=txn, custom_metadata={"lockstep.app_id": app_id})
    if isinstance(data, pl.LazyFrame):
        data = data.collect()
    try:
        if isinstance(data, pl.DataFrame):
            if dt is None:  # create the (empty) table first, so that one path serves every write
                data = _with_partition(data, partition)
                dt = create_table(uri, data.to_arrow().schema, partition_by=list(partition), storage_options=opts)
            written = _overwrite_partition(dt, uri, data, partition, props, opts)
            if written is not None:
                dt.update_incremental()  # the commit just made (and any since): what a fresh open reads
                remember_version(uri, storage_options, dt)  # the step reads the version it wrote
                actions = partition_actions(dt, partition)  # the log's files once: their rows and paths
                return TableRef(uri, dt.version(), rows_in(actions), partition,
                                files=_written_files(dt, uri, partition, written, storage_options, sizes_in(actions)))
    except (DeltaError, OSError, pa.ArrowException, pl.exceptions.PolarsError) as exc:
        raise StorageError(f"{uri}: write of {partition} failed: {exc}", uri=uri, partition=partition) from exc
    arrow = _as_arrow(data, partition)
    try:
        write_deltalake(
            uri,
            arrow,
            mode="overwrite",
            predicate=_predicate(partition),
            partition_by=list(partition),
            schema_mode="merge",
            storage_options=opts,
            commit_properties=props,
        )
    except (DeltaError, OSError, pa.ArrowException) as exc:
        raise StorageError(f"{uri}: write of {partition} failed: {exc}", uri=uri, partition=partition) from exc
    dt = open_table(uri, storage_options)
    assert dt is not None
    remember_version(uri, storage_options, dt)
    return TableRef(uri, dt.version(), partition_rows(dt, partition), partition,
                    files=_file_hashes(dt, uri, partition, storage_options))


def unchanged(
    uri: str, partition: dict[str, str], app_id: str, fingerprint: int, storage_options: dict[str, str] | None = None,
) -> TableRef | None:
    """A skipped :class:`TableRef` when the table already records ``app_id`` at
    ``fingerprint`` (the same inputs were written before), else None: lets a step skip
    computing what it would not write."""
    dt = open_table(uri, storage_options)
    if dt is None or dt.transaction_version(app_id) != fingerprint:
        return None
    log.info("%s: %s unchanged (app transaction %s at fingerprint %d), not computed again at version %d",
             uri, _predicate(partition) or "table", app_id, fingerprint, dt.version())
    remember_version(uri, storage_options, dt)
    return TableRef(uri, dt.version(), partition_rows(dt, partition), partition, skipped=True)
