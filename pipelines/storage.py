"""Delta Lake IO: idempotent interval writes, versions, history and time travel.

Tables live at ``<root>/<pipeline>/<region>/<layer>/<table>``. A write replaces exactly one
interval's partition (a predicate overwrite) and records a Delta *app transaction* whose id is
``lockstep/<pipeline>/<region>/<layer>/<table>/<interval>`` and whose version is a fingerprint
of the write's inputs. So:

* a retried or re-run write neither duplicates nor drops rows (the partition is replaced);
* a write whose inputs have not changed is skipped without a new table version;
* a write killed midway commits nothing: Delta's log only moves on a successful commit, so
  the table still reads at its previous version.

Example::

    ref = write_interval(uri, frame, partition={"ds": "2026-01-01"},
                         app_id="lockstep/p/eu-west/raw/t/2026-01-01", fingerprint=fp)
    read_table(uri, partition={"ds": "2026-01-01"}).collect()
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable, Iterable
from contextvars import ContextVar, Token
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeAlias, TypeVar
from urllib.parse import unquote

import polars as pl
import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError

from pipelines.errors import StorageError
from pipelines.paths import LOCKSTEP_DIR, join_uri, lockstep_uri, table_uri  # noqa: F401  (re-exported)


def interval_app_id(pipeline: str, region: str, layer: str, table: str, interval_key: str) -> str:
    """The Delta app-transaction id of one interval of one table."""
    return f"lockstep/{pipeline}/{region}/{layer}/{table}/{interval_key}"


def fingerprint(*parts: Any) -> int:
    """A positive 63-bit fingerprint of JSON-able inputs (used as an app-transaction version)."""
    payload = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return int.from_bytes(hashlib.sha256(payload.encode()).digest()[:8], "big") >> 1


@dataclass(frozen=True)
class TableRef:
    """A small reference to one interval of one table: what tasks pass to each other."""

    uri: str
    version: int
    rows: int
    partition: dict[str, str]
    skipped: bool = False
    #: the partition's data files at ``version``: {path as the Delta log names it (relative
    #: to the table root): {"sha256": hex digest of the file's bytes, "size": bytes}}
    files: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _predicate(partition: dict[str, str]) -> str:
    def quote(v: str) -> str:
        return "'" + v.replace("'", "''") + "'"

    return " AND ".join(f"{k} = {quote(v)}" for k, v in partition.items())


def open_table(uri: str, storage_options: dict[str, str] | None = None, version: int | None = None) -> DeltaTable | None:
    """The Delta table at ``uri`` (at ``version``), or None when there is none yet."""
    try:
        return DeltaTable(uri, version=version, storage_options=storage_options or None)
    except TableNotFoundError:
        return None
    except (DeltaError, OSError) as exc:
        raise StorageError(f"{uri}: cannot open Delta table: {exc}", uri=uri) from exc


def table_exists(uri: str, storage_options: dict[str, str] | None = None) -> bool:
    """Is there a Delta table at ``uri``? (Locally a folder check, without replaying its log.)"""
    if "://" not in uri:
        return (Path(uri) / "_delta_log").is_dir()
    return open_table(uri, storage_options) is not None


def table_version(uri: str, storage_options: dict[str, str] | None = None) -> int | None:
    dt = open_table(uri, storage_options)
    return None if dt is None else dt.version()


def partition_actions(dt: DeltaTable, partition: dict[str, str]) -> pl.DataFrame:
    """The add actions (flattened: ``path``, ``size_bytes``, ``num_records``, ``partition.<column>``,
    ...) of one partition's data files at the table's version."""
    actions = pl.DataFrame(dt.get_add_actions(flatten=True))  # (the Arrow C stream: no pyarrow conversion)
    if actions.is_empty():
        return actions
    cond = pl.lit(True)
    for k, v in partition.items():
        col = f"partition.{k}"
        if col not in actions.columns:
            return actions.clear()
        cond = cond & (pl.col(col) == v)
    return actions.filter(cond)


def partition_rows(dt: DeltaTable, partition: dict[str, str]) -> int:
    """Rows in one partition, from the Delta log's file statistics (no data read)."""
    actions = partition_actions(dt, partition)
    return int(actions["num_records"].sum()) if actions.height else 0


def partition_sizes(dt: DeltaTable, partition: dict[str, str]) -> dict[str, int]:
    """The data files of one partition at the table's version: {path as the Delta log names it
    (relative to the table root, percent-encoded): size in bytes as the log records it}."""
    actions = partition_actions(dt, partition)
    if not actions.height:
        return {}
    return {str(p): int(n) for p, n in actions.select("path", "size_bytes").iter_rows()}


def object_path(log_path: str) -> str:
    """The object-store path (relative to the table root) of a data file the Delta log names
    ``log_path`` (the log percent-encodes it)."""
    return unquote(log_path)


def file_digest(data: bytes | memoryview) -> dict[str, Any]:
    """``{"sha256": hex, "size": bytes}`` of a data file's bytes (what a :class:`TableRef`,
    a profile and a certification record per file)."""
    return {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


def partition_files(
    uri: str, partition: dict[str, str], *, version: int | None = None,
    storage_options: dict[str, str] | None = None,
) -> frozenset[str]:
    """The data files holding one partition (at ``version``): equal sets, equal contents."""
    dt = open_table(uri, storage_options, version)
    if dt is None:
        return frozenset()
    actions = pl.from_arrow(pa.table(dt.get_add_actions(flatten=True)))
    assert isinstance(actions, pl.DataFrame)
    cond = pl.lit(True)
    for k, v in partition.items():
        if f"partition.{k}" not in actions.columns:
            return frozenset()
        cond = cond & (pl.col(f"partition.{k}") == v)
    return frozenset(actions.filter(cond)["path"].to_list()) if actions.height else frozenset()


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


def put_object(root: str, path: str, data: bytes, storage_options: dict[str, str] | None = None) -> int:
    """Write ``data`` to ``<root>/<path>`` through deltalake's object store (a local folder,
    ``s3://``, ``abfss://``, ``gs://`` alike, with the same storage options as the tables);
    returns the bytes written. Parent folders of a local path are created."""
    from deltalake._internal import DeltaFileSystemHandler  # the object store behind deltalake.fs

    out = DeltaFileSystemHandler(root, options=storage_options or None).open_output_stream(path)
    try:
        out.write(data)
    finally:
        out.close()  # type: ignore[attr-defined]  # (not in the stub) completes the upload
    return len(data)


def read_object(root: str, path: str, storage_options: dict[str, str] | None = None) -> bytes:
    """The bytes of ``<root>/<path>`` through deltalake's object store (as :func:`put_object`
    writes them), fetched once: every byte the store holds now, whatever a log says its size is."""
    if "://" not in root or root.startswith("file://"):  # local disk: one read, no copy through the store
        base = unquote(root[len("file://"):]) if root.startswith("file://") else root
        return (Path(base) / path).read_bytes()
    from deltalake._internal import DeltaFileSystemHandler  # the object store behind deltalake.fs

    f = DeltaFileSystemHandler(root, options=storage_options or None).open_input_file(path)
    try:
        return f.read(f.size())
    finally:
        f.close()  # type: ignore[attr-defined]  # (not in the stub)


def _file_hashes(dt: DeltaTable, uri: str, partition: dict[str, str],
                 storage_options: dict[str, str] | None) -> dict[str, dict[str, Any]]:
    try:
        return {p: file_digest(read_object(uri, object_path(p), storage_options))
                for p in sorted(partition_sizes(dt, partition))}
    except (DeltaError, OSError) as exc:
        raise StorageError(f"{uri}: cannot read the data files of {_predicate(partition) or 'the table'} "
                           f"at version {dt.version()} to hash them: {exc}", uri=uri) from exc


def partition_file_hashes(
    uri: str, version: int, partition: dict[str, str], storage_options: dict[str, str] | None = None,
) -> dict[str, dict[str, Any]]:
    """The data files of one partition at ``version``, each read through deltalake's object
    store and hashed: ``{path as the Delta log names it: {"sha256": hex, "size": bytes}}``
    (``{}`` for an empty partition). For writes that did not hash the bytes they put."""
    dt = open_table(uri, storage_options, version)
    if dt is None:
        raise StorageError(f"{uri}: no Delta table (version {version})", uri=uri)
    return _file_hashes(dt, uri, partition, storage_options)


def _written_files(dt: DeltaTable, uri: str, partition: dict[str, str], written: dict[str, dict[str, Any]],
                   storage_options: dict[str, str] | None) -> dict[str, dict[str, Any]]:
    """The partition's files at ``dt``'s version, with the hashes taken while writing them
    (keyed by the object path put); read and hashed again only when the log holds other files
    than the ones written (a concurrent writer replaced the partition meanwhile)."""
    logged = partition_sizes(dt, partition)
    if {object_path(p) for p in logged} == set(written):
        return {p: written[object_path(p)] for p in sorted(logged)}
    return _file_hashes(dt, uri, partition, storage_options)


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


#: how often a commit that lost a race with a concurrent writer is tried again
COMMIT_RETRIES = 6
#: first back-off (seconds); doubles per retry, with jitter, capped at COMMIT_BACKOFF_CAP
COMMIT_BACKOFF = 0.05
COMMIT_BACKOFF_CAP = 2.0

_CONFLICT_MARKS = ("concurrent", "conflict", "already exists", "version already")

_R = TypeVar("_R")


def is_commit_conflict(exc: BaseException) -> bool:
    """Did a commit lose a race with another writer (so that trying again can succeed)?"""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, CommitFailedError):
            return True
        if isinstance(seen, DeltaError | StorageError) and any(m in str(seen).lower() for m in _CONFLICT_MARKS):
            return True
        seen = seen.__cause__
    return False


def retry_on_conflict(fn: Callable[..., _R], what: str) -> Callable[..., _R]:
    """``fn`` called again, with exponential back-off and jitter, while its commit conflicts
    with a concurrent writer; a conflict that survives :data:`COMMIT_RETRIES` retries is one
    :class:`StorageError` naming ``what`` (the table and the interval or append)."""

    def call(*args: Any, **kwargs: Any) -> _R:
        delay = COMMIT_BACKOFF
        for attempt in range(COMMIT_RETRIES + 1):
            try:
                return fn(*args, **kwargs)
            except (DeltaError, StorageError) as exc:
                if not is_commit_conflict(exc):
                    raise
                if attempt == COMMIT_RETRIES:
                    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                    first = first.rsplit("Commit failed: ", 1)[-1].rstrip(".")
                    raise StorageError(
                        f"{what}: commit still conflicts with a concurrent writer after {COMMIT_RETRIES} "
                        f"retries ({first}); run it again", retryable=True) from exc
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, COMMIT_BACKOFF_CAP)
        raise AssertionError("unreachable")

    return call


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
            return TableRef(uri, dt.version(), partition_rows(dt, partition), partition, skipped=True)
    txn = [Transaction(app_id=app_id, version=fingerprint if fingerprint is not None else 0)]
    props = CommitProperties(app_transactions=txn, custom_metadata={"lockstep.app_id": app_id})
    if isinstance(data, pl.LazyFrame):
        data = data.collect()
    try:
        if isinstance(data, pl.DataFrame):
            if dt is None:  # create the (empty) table first, so that one path serves every write
                data = _with_partition(data, partition)
                dt = DeltaTable.create(uri, data.to_arrow().schema, partition_by=list(partition),
                                       storage_options=opts)
            written = _overwrite_partition(dt, uri, data, partition, props, opts)
            if written is not None:
                dt = open_table(uri, storage_options)
                assert dt is not None
                return TableRef(uri, dt.version(), partition_rows(dt, partition), partition,
                                files=_written_files(dt, uri, partition, written, storage_options))
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
    return TableRef(uri, dt.version(), partition_rows(dt, partition), partition,
                    files=_file_hashes(dt, uri, partition, storage_options))


def read_table(
    uri: str,
    *,
    version: int | None = None,
    partition: dict[str, str] | None = None,
    storage_options: dict[str, str] | None = None,
) -> pl.LazyFrame:
    """A lazy scan of the table at ``uri`` (at ``version``), optionally one partition."""
    try:
        lf = pl.scan_delta(uri, version=version, storage_options=storage_options or None)
    except Exception as exc:  # polars raises several types for a missing or broken table
        raise StorageError(f"{uri}: cannot read Delta table (version {version}): {exc}", uri=uri) from exc
    for k, v in (partition or {}).items():
        lf = lf.filter(pl.col(k) == v)
    return lf


def read_partitions(
    uri: str, column: str, values: Iterable[str], *, version: int | None = None,
    storage_options: dict[str, str] | None = None,
) -> pl.LazyFrame | None:
    """A lazy scan of the partitions ``column in values``, or None when the table does not exist."""
    dt = open_table(uri, storage_options, version)
    if dt is None:
        return None
    return read_table(uri, version=dt.version(), storage_options=storage_options).filter(
        pl.col(column).is_in(list(values))
    )


def history(uri: str, storage_options: dict[str, str] | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """The table's commits, newest first (version, timestamp, operation, metrics)."""
    dt = open_table(uri, storage_options)
    if dt is None:
        return []
    return dt.history(limit)


#: table properties every control-plane table (evidence, check results, decisions, maintenance
#: log) is created with: a checkpoint every 10 commits, so opening one replays at most 10 JSON
#: commits however long its history grows (delta-rs writes the checkpoint after the commit)
CONTROL_TABLE_CONFIGURATION: dict[str, str | None] = {"delta.checkpointInterval": "10"}


def _append(uri: str, arrow: pa.Table, storage_options: dict[str, str] | None, partition_by: list[str] | None,
            table: DeltaTable | None) -> DeltaTable:
    """Append ``arrow`` to the table at ``uri`` (through ``table`` when it is already open,
    else opened here; created with :data:`CONTROL_TABLE_CONFIGURATION` when there is none);
    returns the table at the version of the append (or a newer one)."""
    opts = storage_options or None
    state: dict[str, Any] = {"dt": table if table is not None else open_table(uri, storage_options), "tries": 0}

    def once() -> DeltaTable:
        dt = state["dt"]
        if state["tries"]:  # a retry after a conflict: see what the winner committed first
            if dt is None:
                dt = state["dt"] = open_table(uri, storage_options)
            else:
                dt.update_incremental()
        state["tries"] += 1
        if dt is None:
            write_deltalake(uri, arrow, mode="append", schema_mode="merge", storage_options=opts,
                            partition_by=partition_by or None, configuration=CONTROL_TABLE_CONFIGURATION)
            dt = state["dt"] = open_table(uri, storage_options)
            if dt is None:
                raise StorageError(f"{uri}: the table an append created cannot be opened", uri=uri)
            return dt
        # writing through the open table commits on top of its snapshot (a blind append: delta-rs
        # rebases it over concurrent commits) and moves it to the new version, without a log replay
        write_deltalake(dt, arrow, mode="append", schema_mode="merge",
                        partition_by=list(dt.metadata().partition_columns) or None)
        return dt

    try:
        return retry_on_conflict(once, f"{uri}: append")()
    except (DeltaError, OSError, pa.ArrowException) as exc:
        raise StorageError(f"{uri}: append failed: {exc}", uri=uri) from exc


def append_rows(uri: str, rows: pa.Table | pl.DataFrame, storage_options: dict[str, str] | None = None,
                partition_by: list[str] | None = None, *, table: DeltaTable | None = None) -> int:
    """Append to a bookkeeping table (check results, certifications, evidence); returns the
    new version. ``partition_by`` applies when the append creates the table (an existing
    table keeps the partitioning it was created with); so does :data:`CONTROL_TABLE_CONFIGURATION`.
    ``table``: the table at ``uri``, already open (written through and moved to the new version)."""
    arrow = rows.to_arrow() if isinstance(rows, pl.DataFrame) else rows
    return _append(uri, arrow, storage_options, partition_by, table).version()


def scan_partition(dt: DeltaTable, partition: dict[str, str], storage_options: dict[str, str] | None = None,
                   *, where: dict[str, str | int] | None = None) -> pl.LazyFrame:
    """A lazy scan of one partition of an opened table, at the version it holds: the
    partition's data files (listed by the log) read directly, in the table's schema (a column a
    file predates reads null). Cheaper than :func:`read_table` for a small partition of a table
    with many files: no second log replay, no other partition's statistics. A key of
    ``partition`` that is not a partition column of the table filters rows instead. ``where``:
    equalities on data columns (strings, integers), which skip the files whose logged min/max
    statistics rule them out and then filter the rows (a file without statistics is read). A
    table whose readers need more than plain parquet (deletion vectors, column mapping) is
    read through polars' Delta reader."""
    schema = pl.Schema(dt.schema())
    parts = {k: v for k, v in partition.items() if k in dt.metadata().partition_columns}
    rest = {k: v for k, v in partition.items() if k not in parts}
    partition_columns = list(dt.metadata().partition_columns)
    if dt.protocol().min_reader_version > 1 or any(k not in parts for k in partition_columns):
        # (or several partitions: polars' reader takes each file's partition values from the log)
        lf = pl.scan_delta(dt, storage_options=storage_options or None)
        rest = partition
    else:
        prune = [(k, "=", v) for k, v in parts.items()] + [(k, "=", v) for k, v in (where or {}).items()]
        files = dt.file_uris(file_pruning_predicate=prune or None)
        data_schema = pl.Schema({k: t for k, t in schema.items() if k not in partition_columns})
        if files:
            lf = pl.scan_parquet(files, schema=data_schema, missing_columns="insert", extra_columns="ignore",
                                 cast_options=DELTA_CASTS, storage_options=storage_options or None)
        else:
            lf = pl.LazyFrame(schema=data_schema)
        if partition_columns:  # the partition's values, as columns
            lf = lf.with_columns(pl.lit(parts[k], dtype=schema[k]).alias(k)
                                 for k in schema.names() if k not in data_schema).select(schema.names())
    for k, w in {**rest, **(where or {})}.items():
        lf = lf.filter(pl.col(k) == w)
    return lf


#: the casts polars' own Delta reader allows between a file's types and the table's
DELTA_CASTS = pl.ScanCastOptions(
    integer_cast="upcast", float_cast=["upcast", "downcast"],
    datetime_cast=("nanosecond-downcast", "millisecond-upcast", "convert-timezone"),
    missing_struct_fields="insert", extra_struct_fields="ignore", categorical_to_string="allow",
)


class OpenTables:
    """Control-plane tables opened once for one decision, by URI.

    The first :meth:`get` of a table opens it (a log replay); each later one brings the same
    object up to the newest committed version, reading only the commits since. So a reader
    always sees what a fresh open would see at that moment (never an older version than the
    store holds), without replaying the log again. Writes go through :meth:`append`, which
    commits through the open table.

    One per decision: ``with OpenTables(options) as tables:`` makes them the decision's tables
    for the block, so code that runs inside it (the checks, the decision log) shares them
    through :func:`decision_tables`; on leaving, they are forgotten."""

    def __init__(self, storage_options: dict[str, str] | None = None) -> None:
        self.storage_options = dict(storage_options or {})
        self._tables: dict[str, DeltaTable] = {}
        self._tokens: list[Token[OpenTables | None]] = []

    def __enter__(self) -> OpenTables:
        self._tokens.append(_DECISION_TABLES.set(self))
        return self

    def __exit__(self, *exc: object) -> None:
        _DECISION_TABLES.reset(self._tokens.pop())
        self._tables.clear()

    def get(self, uri: str) -> DeltaTable | None:
        """The table at ``uri`` at its newest committed version, or None when there is none."""
        dt = self._tables.get(uri)
        if dt is None:
            dt = open_table(uri, self.storage_options)
            if dt is not None:
                self._tables[uri] = dt
            return dt
        try:
            dt.update_incremental()
        except (DeltaError, OSError) as exc:
            raise StorageError(f"{uri}: cannot read the Delta table's new commits: {exc}", uri=uri) from exc
        return dt

    def append(self, uri: str, rows: pa.Table | pl.DataFrame, partition_by: list[str] | None = None) -> int:
        """:func:`append_rows` through the open table; returns the new version."""
        arrow = rows.to_arrow() if isinstance(rows, pl.DataFrame) else rows
        dt = _append(uri, arrow, self.storage_options, partition_by, self._tables.get(uri))
        self._tables[uri] = dt
        return dt.version()


_DECISION_TABLES: ContextVar[OpenTables | None] = ContextVar("lockstep_decision_tables", default=None)


def decision_tables(storage_options: dict[str, str] | None = None) -> OpenTables:
    """The open control tables of the decision in progress (a ``with OpenTables(...)`` block
    with the same storage options), else new ones, for this call alone."""
    current = _DECISION_TABLES.get()
    if current is not None and current.storage_options == dict(storage_options or {}):
        return current
    return OpenTables(storage_options)


def unchanged(
    uri: str, partition: dict[str, str], app_id: str, fingerprint: int, storage_options: dict[str, str] | None = None,
) -> TableRef | None:
    """A skipped :class:`TableRef` when the table already records ``app_id`` at
    ``fingerprint`` (the same inputs were written before), else None: lets a step skip
    computing what it would not write."""
    dt = open_table(uri, storage_options)
    if dt is None or dt.transaction_version(app_id) != fingerprint:
        return None
    return TableRef(uri, dt.version(), partition_rows(dt, partition), partition, skipped=True)


def partitions_identity(
    uri: str, column: str, values: Iterable[str], *, version: int | None = None,
    storage_options: dict[str, str] | None = None,
) -> list[list[str]]:
    """The data files of the partitions ``column in values`` at ``version``, as sorted
    (value, path) pairs: equal lists, equal contents (Delta never rewrites a file in place)."""
    dt = open_table(uri, storage_options, version)
    if dt is None:
        return []
    actions = pl.from_arrow(pa.table(dt.get_add_actions(flatten=True)))
    assert isinstance(actions, pl.DataFrame)
    col = f"partition.{column}"
    if actions.is_empty() or col not in actions.columns:
        return []
    picked = actions.filter(pl.col(col).is_in(list(values))).select(col, "path").sort(col, "path")
    return [[str(v), str(p)] for v, p in picked.iter_rows()]


def append_in_order(uri: str, build: Callable[[int], pl.DataFrame], storage_options: dict[str, str] | None = None,
                    *, tables: OpenTables | None = None, partition_by: list[str] | None = None) -> int:
    """Append the rows ``build(v)`` makes as exactly commit ``v`` of the table at ``uri``: the
    rows carry the version of the commit that holds them, so the log's order is in the rows.

    A blind append would be rebased over a concurrent writer's commit (and land at another
    version than its rows say); here a lost race is not rebased but tried again, with the rows
    rebuilt for the next free version. The table is created empty first (version 0: no rows),
    so every row's version is that of a real append. Returns the version written."""
    opts = storage_options or None
    tables = tables or decision_tables(storage_options)

    def once() -> int:
        dt = tables.get(uri)
        if dt is None:
            DeltaTable.create(uri, build(0).to_arrow().schema, partition_by=partition_by or None, mode="ignore",
                              storage_options=opts, configuration=CONTROL_TABLE_CONFIGURATION)
            dt = tables.get(uri)
            if dt is None:
                raise StorageError(f"{uri}: the table just created cannot be opened", uri=uri)
        version = dt.version() + 1
        # no rebase: a lost race raises, and retry_on_conflict builds the rows again for the next version
        write_deltalake(dt, build(version).to_arrow(), mode="append", schema_mode="merge",
                        commit_properties=CommitProperties(max_commit_retries=0))
        if dt.version() != version:  # cannot happen without a rebase; never leave a row misnumbered silently
            raise StorageError(f"{uri}: the append meant as version {version} landed at {dt.version()}", uri=uri)
        return version

    try:
        return retry_on_conflict(once, f"{uri}: append in log order")()
    except (DeltaError, OSError, pa.ArrowException) as exc:
        raise StorageError(f"{uri}: append failed: {exc}", uri=uri) from exc
