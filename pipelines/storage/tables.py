"""Delta tables: opening them, one partition's files and rows from the log, reads and time travel.

Tables live at ``<root>/<pipeline>/<region>/<layer>/<table>``; a :class:`TableRef` is what
tasks pass to each other about one interval of one table. Reads are lazy polars scans
(:func:`read_table`, :func:`read_partitions`, :func:`scan_partition`); what one partition
holds at a version comes from the Delta log alone (:func:`partition_rows`,
:func:`partition_files`, :func:`partitions_identity`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
from deltalake import DeltaTable
from deltalake.exceptions import DeltaError, TableNotFoundError

from pipelines.errors import StorageError


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


def partition_predicate(partition: dict[str, str]) -> str:
    """The SQL predicate selecting one partition (``ds = '2026-01-01' AND hour = '03'``)."""
    return _predicate(partition)


#: the tables opened at a given version in the block in progress (:func:`versions_once`)
_AT_VERSION: ContextVar[dict[tuple[str, int, str], DeltaTable] | None] = ContextVar(
    "lockstep_tables_at_version", default=None)


@contextmanager
def versions_once() -> Iterator[None]:
    """Within the block, :func:`open_table` opens a table at a given version once: a version
    never changes, so the object serves every later read of it (a step reads the version it
    wrote for its schema, its validation and its lineage). Reads only: nothing writes through
    a table opened at a version. Nested blocks share the outermost's tables."""
    if _AT_VERSION.get() is not None:
        yield
        return
    token = _AT_VERSION.set({})
    try:
        yield
    finally:
        _AT_VERSION.reset(token)


def _version_key(uri: str, version: int, storage_options: dict[str, str] | None) -> tuple[str, int, str]:
    return uri, version, json.dumps(storage_options or {}, sort_keys=True)


def open_table(uri: str, storage_options: dict[str, str] | None = None, version: int | None = None) -> DeltaTable | None:
    """The Delta table at ``uri`` (at ``version``), or None when there is none yet."""
    opened = _AT_VERSION.get() if version is not None else None
    if opened is not None:
        assert version is not None
        key = _version_key(uri, version, storage_options)
        if key not in opened:
            dt = _open(uri, storage_options, version)
            if dt is None:
                return None
            opened[key] = dt
        return opened[key]
    return _open(uri, storage_options, version)


def remember_version(uri: str, storage_options: dict[str, str] | None, dt: DeltaTable) -> DeltaTable:
    """Within :func:`versions_once`, let ``dt`` (opened at the latest version, or just written
    through and moved to its commit) serve later opens of its version: a step that wrote a
    version, or looked one up, reads it without opening it again. The caller must not move
    ``dt`` afterwards (no write through it, no update)."""
    opened = _AT_VERSION.get()
    if opened is not None:
        opened.setdefault(_version_key(uri, dt.version(), storage_options), dt)
    return dt


def _open(uri: str, storage_options: dict[str, str] | None, version: int | None) -> DeltaTable | None:
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
    """The table's latest version (None: no table); within :func:`versions_once` the table
    opened to look it up serves the reads of that version."""
    dt = open_table(uri, storage_options)
    return None if dt is None else remember_version(uri, storage_options, dt).version()


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


def rows_in(actions: pl.DataFrame) -> int:
    """Rows in the data files of :func:`partition_actions`, from the log's statistics."""
    return int(actions["num_records"].sum()) if actions.height else 0


def sizes_in(actions: pl.DataFrame) -> dict[str, int]:
    """{path as the Delta log names it (relative to the table root, percent-encoded): size in
    bytes as the log records it} of the data files of :func:`partition_actions`."""
    if not actions.height:
        return {}
    return {str(p): int(n) for p, n in actions.select("path", "size_bytes").iter_rows()}


def partition_rows(dt: DeltaTable, partition: dict[str, str]) -> int:
    """Rows in one partition, from the Delta log's file statistics (no data read)."""
    return rows_in(partition_actions(dt, partition))


def partition_sizes(dt: DeltaTable, partition: dict[str, str]) -> dict[str, int]:
    """The data files of one partition at the table's version (:func:`sizes_in`)."""
    return sizes_in(partition_actions(dt, partition))


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


def read_table(
    uri: str,
    *,
    version: int | None = None,
    partition: dict[str, str] | None = None,
    storage_options: dict[str, str] | None = None,
) -> pl.LazyFrame:
    """A lazy scan of the table at ``uri`` (at ``version``), optionally one partition. A
    version is opened once within :func:`versions_once`."""
    dt = open_table(uri, storage_options, version)
    if dt is None:
        raise StorageError(f"{uri}: cannot read Delta table (version {version}): no Delta table there", uri=uri)
    lf = _scan(uri, dt)
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
    return _scan(uri, dt).filter(pl.col(column).is_in(list(values)))


def _scan(uri: str, dt: DeltaTable) -> pl.LazyFrame:
    """polars' lazy scan of an opened table at the version it holds (its own storage options
    read the files)."""
    try:
        return pl.scan_delta(dt)
    except Exception as exc:  # polars raises several types for a broken table
        raise StorageError(f"{uri}: cannot read Delta table (version {dt.version()}): {exc}", uri=uri) from exc


def history(uri: str, storage_options: dict[str, str] | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """The table's commits, newest first (version, timestamp, operation, metrics)."""
    dt = open_table(uri, storage_options)
    if dt is None:
        return []
    return dt.history(limit)


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
