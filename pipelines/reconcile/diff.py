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

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from pipelines.errors import ReconciliationError
from pipelines.reconcile.parity import ParityReport, Side, compare


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


def diff_frames(a: pl.DataFrame, b: pl.DataFrame, *, keys: list[str], columns: list[str] | None = None,
                buckets: int = 256) -> DiffResult:
    for name, df in (("A", a), ("B", b)):
        missing = [k for k in keys if k not in df.columns]
        if missing:
            raise ReconciliationError(f"table {name} has no key column(s) {missing}")
    for k in keys:
        if _kind(a.schema[k]) != _kind(b.schema[k]):
            raise ReconciliationError(
                f"key column {k!r} is {a.schema[k]} in A but {b.schema[k]} in B: keys of different types never "
                "match; cast one side first")
    if columns is None:
        only_a = [c for c in a.columns if c not in b.columns]
        only_b = [c for c in b.columns if c not in a.columns]
        cols = [c for c in a.columns if c in b.columns and c not in keys]
    else:
        absent = [c for c in columns if c not in a.columns or c not in b.columns]
        if absent:
            raise ReconciliationError(f"column(s) {absent} are not in both tables")
        only_a, only_b, cols = [], [], [c for c in columns if c not in keys]
    report = compare(Side(a, keys, cols, name="A"), Side(b, keys, cols, name="B"), buckets=buckets)
    return DiffResult(report, keys, cols, only_a, only_b)


def diff(uri_a: str, uri_b: str, *, keys: list[str], columns: list[str] | None = None,
         storage_options: dict[str, str] | None = None) -> DiffResult:
    """Compare two Delta or parquet tables by ``keys``."""
    return diff_frames(load_table(uri_a, storage_options), load_table(uri_b, storage_options),
                       keys=keys, columns=columns)
