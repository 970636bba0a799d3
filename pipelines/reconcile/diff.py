"""``lockstep diff``: the parity check as a standalone tool for any two tables.

Both tables (Delta or parquet: a file or a folder of files) are hashed with the stable row
hash, compared with the digest-tree descent of :mod:`pipelines.reconcile.descent`, and every
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

from pipelines.errors import ReconciliationError
from pipelines.reconcile.descent import ParityReport, compare
from pipelines.reconcile.sides import Side, StreamSide

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


@dataclass
class Source:
    """A table to stream: a lazy scan (polars' streaming engine reads it batch by batch, in
    order), its schema, row count (from the files' metadata) and an estimate of its decoded
    size (the parquet footers' uncompressed sizes, where the files are local)."""

    lf: pl.LazyFrame
    schema: pl.Schema
    rows: int
    files: list[str] = field(default_factory=list)

    def batches(self, columns: list[str]) -> Iterator[pl.DataFrame]:
        yield from self.lf.select(columns).collect_batches(chunk_size=BATCH_ROWS, maintain_order=True)

    def decoded_bytes(self, columns: list[str]) -> int:
        if not self.files:  # remote: assume it does not fit (streaming stays bounded)
            return 2**62
        import pyarrow.parquet as pq

        total = 0
        for f in self.files:
            md = pq.ParquetFile(f).metadata
            for i in range(md.num_row_groups):
                rg = md.row_group(i)
                total += sum(rg.column(j).total_uncompressed_size for j in range(rg.num_columns)
                             if rg.column(j).path_in_schema.split(".")[0] in columns)
        return total


def open_source(uri: str, storage_options: dict[str, str] | None = None) -> Source | None:
    """A Delta table (its current version, partition columns included) or a parquet file or
    folder, as a :class:`Source`; None when only a full read can open it (:func:`load_table`)."""
    local = Path(uri).expanduser()
    try:
        files: list[str] = []
        if "://" in uri or (local / "_delta_log").is_dir():
            from deltalake import DeltaTable

            dt = DeltaTable(uri, storage_options=storage_options or None)
            lf = pl.scan_delta(dt)
            if "://" not in uri and not dt.metadata().partition_columns:
                files = [f for f in dt.file_uris() if Path(f).is_file()]
        elif local.is_dir():
            files = sorted(str(p) for p in local.rglob("*.parquet"))
            if not files:
                return None
            lf = pl.scan_parquet(files, hive_partitioning=True)
            files = []  # hive columns are not in the files' footers
        elif local.is_file():
            files = [str(local)]
            lf = pl.scan_parquet(local)
        else:
            return None
        return Source(lf, lf.collect_schema(), int(lf.select(pl.len()).collect().item()), files)
    except Exception:  # a feature the scan lacks: read in full, where errors are reported
        return None


def diff_sources(sa: Source, sb: Source, *, keys: list[str], columns: list[str] | None = None, buckets: int = 256,
                 memory_budget: int = MEMORY_BUDGET) -> DiffResult:
    """:func:`diff_frames` of two tables streamed batch by batch, each hashed as it streams;
    memory stays within ``memory_budget`` whatever their size (decoded batches are kept for
    the descent only when both fit; row hashes spill to disk past a quarter of it)."""
    cols, only_a, only_b = _columns(sa.schema, sb.schema, keys, columns)
    wanted = [*keys, *cols]
    keep = sa.decoded_bytes(wanted) + sb.decoded_bytes(wanted) <= memory_budget
    opts: dict[str, Any] = {"keep_values": keep, "hash_budget": memory_budget // 4}
    a = StreamSide(sa.batches, sa.schema, keys, cols, name="A", rows_hint=sa.rows, **opts)
    try:
        b = StreamSide(sb.batches, sb.schema, keys, cols, name="B", rows_hint=sb.rows, **opts)
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
    sa, sb = open_source(uri_a, storage_options), open_source(uri_b, storage_options)
    if sa is None or sb is None:
        return diff_frames(load_table(uri_a, storage_options), load_table(uri_b, storage_options),
                           keys=keys, columns=columns)
    try:
        return diff_sources(sa, sb, keys=keys, columns=columns)
    except ReconciliationError:
        raise
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise ReconciliationError(f"cannot read table: {str(exc).splitlines()[0] if str(exc) else exc}") from None
