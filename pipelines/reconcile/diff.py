"""``lockstep diff``: the parity check as a standalone tool for any two tables.

Both tables (Delta or parquet: a file or a folder of files) are hashed with the stable row
hash, compared with the digest tree of :mod:`pipelines.reconcile.parity`, and every
differing key is reported with its kind.

Example::

    result = diff("s3://a/merchant_risk", "s3://b/merchant_risk", keys=["merchant_id"])
    result.as_json()["changed"]           # rows whose key exists on both sides but differ
    result.keys_frame().write_parquet("diff.parquet")
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

from pipelines.errors import ReconciliationError
from pipelines.reconcile.parity import ParityReport, Side, StreamSide, compare

#: Memory the diff may hold: the two tables' decoded batches are kept for the descent when
#: they fit in it; past it, the rows a descent needs are read again. Row hashes (16 bytes a
#: row and side) spill to disk past half of it.
MEMORY_BUDGET = 2 * 2**30
BATCH_ROWS = 1 << 20


def load_table(uri: str, storage_options: dict[str, str] | None = None) -> pl.DataFrame:
    """A Delta table (a folder with ``_delta_log``, or any object-store URI Delta can open),
    else a parquet file or a folder of parquet files."""
    local = Path(uri).expanduser()
    try:
        if "://" in uri or (local / "_delta_log").is_dir():
            return pl.read_delta(uri, storage_options=storage_options or None)
        if local.is_dir():
            files = sorted(str(p) for p in local.rglob("*.parquet"))
            if not files:
                raise ReconciliationError(f"{uri}: neither a Delta table nor a folder of parquet files")
            return pl.read_parquet(files, hive_partitioning=True)
        if local.is_file():
            return pl.read_parquet(local)
    except ReconciliationError:
        raise
    except Exception as exc:  # polars and deltalake raise many types for unreadable input
        raise ReconciliationError(f"{uri}: cannot read table: {str(exc).splitlines()[0] if str(exc) else exc}") from None
    raise ReconciliationError(f"{uri}: no such table or file")


@dataclass
class DiffResult:
    report: ParityReport
    keys: list[str]
    columns: list[str]
    columns_only_in_a: list[str] = field(default_factory=list)
    columns_only_in_b: list[str] = field(default_factory=list)

    @property
    def equal(self) -> bool:
        return self.report.differing == 0 and not self.columns_only_in_a and not self.columns_only_in_b

    def keys_frame(self) -> pl.DataFrame:
        return self.report.keys_frame()

    def as_json(self) -> dict[str, Any]:
        s = self.report.summary()
        return {
            "equal": self.equal, "keys": self.keys, "columns": self.columns,
            "rows_a": s["rows_a"], "rows_b": s["rows_b"],
            "only_in_a": s["only_in_a"], "only_in_b": s["only_in_b"], "changed": s["changed"],
            "changed_columns": s["changed_columns"], "samples": s["samples"],
            "columns_only_in_a": self.columns_only_in_a, "columns_only_in_b": self.columns_only_in_b,
            "bytes_moved": s["bytes_moved"], "buckets_compared": s["buckets_compared"],
        }


def _kind(dtype: pl.DataType) -> str:
    """Types whose values compare (and hash) alike: every integer width, every float width,
    every datetime unit."""
    if dtype.is_integer():
        return "integer"
    if dtype.is_float():
        return "float"
    if isinstance(dtype, pl.Datetime):
        return "datetime"
    return str(dtype.base_type())


def _columns(schema_a: pl.Schema, schema_b: pl.Schema, keys: list[str], columns: list[str] | None,
             ) -> tuple[list[str], list[str], list[str]]:
    """(compared columns, columns only in A, only in B), after checking the keys."""
    for name, schema in (("A", schema_a), ("B", schema_b)):
        missing = [k for k in keys if k not in schema]
        if missing:
            raise ReconciliationError(f"table {name} has no key column(s) {missing}")
    for k in keys:
        if _kind(schema_a[k]) != _kind(schema_b[k]):
            raise ReconciliationError(
                f"key column {k!r} is {schema_a[k]} in A but {schema_b[k]} in B: keys of different types never "
                "match; cast one side first")
    if columns is None:
        only_a = [c for c in schema_a if c not in schema_b]
        only_b = [c for c in schema_b if c not in schema_a]
        return [c for c in schema_a if c in schema_b and c not in keys], only_a, only_b
    absent = [c for c in columns if c not in schema_a or c not in schema_b]
    if absent:
        raise ReconciliationError(f"column(s) {absent} are not in both tables")
    return [c for c in columns if c not in keys], [], []


def diff_frames(a: pl.DataFrame, b: pl.DataFrame, *, keys: list[str], columns: list[str] | None = None,
                buckets: int = 256) -> DiffResult:
    cols, only_a, only_b = _columns(a.schema, b.schema, keys, columns)
    report = compare(Side(a, keys, cols, name="A"), Side(b, keys, cols, name="B"), buckets=buckets)
    return DiffResult(report, keys, cols, only_a, only_b)


def open_dataset(uri: str, storage_options: dict[str, str] | None = None) -> Any:
    """A pyarrow dataset over a Delta table (its current version, partition columns
    included) or a parquet file or folder; None when only a full read can open it (then
    :func:`load_table` does)."""
    import pyarrow.dataset as ds

    local = Path(uri).expanduser()
    try:
        if "://" in uri or (local / "_delta_log").is_dir():
            from deltalake import DeltaTable

            dt = DeltaTable(uri, storage_options=storage_options or None)
            features = dt.protocol().reader_features or []
            if "deletionVectors" in features or dt.metadata().configuration.get("delta.columnMapping.mode", "none") != "none":
                return None
            if "://" not in uri and not dt.metadata().partition_columns:
                # local files straight to Arrow's reader (the Delta dataset reads through Python)
                return ds.dataset(dt.file_uris(), format="parquet", schema=pa.schema(dt.schema().to_arrow()))
            return dt.to_pyarrow_dataset()
        if local.is_dir():
            files = sorted(str(p) for p in local.rglob("*.parquet"))
            if not files:
                return None
            return ds.dataset(files, format="parquet", partitioning="hive", partition_base_dir=str(local))
        if local.is_file():
            return ds.dataset(str(local), format="parquet")
    except Exception:  # a feature pyarrow's reader lacks (e.g. deletion vectors): read in full
        return None
    return None


def _stream(dataset: Any) -> Any:
    def batches(columns: list[str]) -> Iterator[pa.RecordBatch]:
        # ordered, with little read-ahead: memory stays a few batches whatever the table
        yield from dataset.to_batches(columns=columns, batch_size=BATCH_ROWS, batch_readahead=2,
                                      fragment_readahead=1)
    return batches


def _decoded_bytes(dataset: Any, columns: list[str]) -> int:
    """The columns' uncompressed size from the parquet footers (no data read)."""
    total = 0
    for frag in dataset.get_fragments():
        md = frag.metadata
        for i in range(md.num_row_groups):
            rg = md.row_group(i)
            for j in range(rg.num_columns):
                cc = rg.column(j)
                if cc.path_in_schema.split(".")[0] in columns:
                    total += cc.total_uncompressed_size
    return total


def diff_datasets(da: Any, db: Any, *, keys: list[str], columns: list[str] | None = None, buckets: int = 256,
                  memory_budget: int = MEMORY_BUDGET) -> DiffResult:
    """:func:`diff_frames` of two pyarrow datasets, streaming: each side is read once in
    batches and hashed as it streams; memory stays within ``memory_budget`` at any size."""
    schema_a = pl.from_arrow(da.schema.empty_table()).schema  # type: ignore[union-attr]
    schema_b = pl.from_arrow(db.schema.empty_table()).schema  # type: ignore[union-attr]
    cols, only_a, only_b = _columns(schema_a, schema_b, keys, columns)
    wanted = [*keys, *cols]
    rows_a, rows_b = da.count_rows(), db.count_rows()
    keep = _decoded_bytes(da, wanted) + _decoded_bytes(db, wanted) <= memory_budget
    opts: dict[str, Any] = {"keep_values": keep, "hash_budget": memory_budget // 4}
    a = StreamSide(_stream(da), da.schema, keys, cols, name="A", rows_hint=rows_a, **opts)
    try:
        b = StreamSide(_stream(db), db.schema, keys, cols, name="B", rows_hint=rows_b, **opts)
        try:
            report = compare(a, b, buckets=buckets)
        finally:
            b.close()
    finally:
        a.close()
    return DiffResult(report, keys, cols, only_a, only_b)


def diff(uri_a: str, uri_b: str, *, keys: list[str], columns: list[str] | None = None,
         storage_options: dict[str, str] | None = None) -> DiffResult:
    """Compare two Delta or parquet tables by ``keys``, streaming both (bounded memory)."""
    da, db = open_dataset(uri_a, storage_options), open_dataset(uri_b, storage_options)
    if da is None or db is None:
        return diff_frames(load_table(uri_a, storage_options), load_table(uri_b, storage_options),
                           keys=keys, columns=columns)
    try:
        return diff_datasets(da, db, keys=keys, columns=columns)
    except ReconciliationError:
        raise
    except (OSError, pa.ArrowException) as exc:
        raise ReconciliationError(f"cannot read table: {str(exc).splitlines()[0] if str(exc) else exc}") from None
