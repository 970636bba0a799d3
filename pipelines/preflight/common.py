"""What several preflight checks share: the spec's file (or name) they name, an error's first
line, a table's declared schema and an input file's schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from pipelines.errors import SourceError, SpecError
from pipelines.spec import PipelineSpec, TableSpec


def spec_where(spec: PipelineSpec) -> str:
    return str(spec.path) if spec.path is not None else spec.name


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= 300 else line[:300] + "…"


def declared_schema(t: TableSpec) -> pl.Schema | None:
    if not t.columns:
        return None
    cols: dict[str, Any] = {}
    for c in t.columns:
        dtype = getattr(pl, c.dtype, None)
        if dtype is None:
            raise SpecError(f"tables[{t.name}].columns: unknown polars dtype {c.dtype!r} of column {c.name!r}",
                            field="columns")
        cols[c.name] = dtype
    for p in t.partition_by:
        cols.setdefault(p, pl.String)
    return pl.Schema(cols)


def file_schema(kind: str, path: Path) -> pl.Schema:
    try:
        if kind == "parquet":
            return pl.Schema(pl.read_parquet_schema(path))
        if kind == "csv":
            return pl.scan_csv(path, try_parse_dates=True).collect_schema()
        return pl.scan_ndjson(path).collect_schema()
    except Exception as exc:
        raise SourceError(f"{path}: cannot read {kind} file ({type(exc).__name__}: {first_line(exc)}); "
                          "the file was left in place", path=str(path)) from None
