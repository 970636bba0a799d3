"""Ingestion: read one region's interval of a source.

:func:`read_source` returns the rows and a *fingerprint* of what was read (file size and
modification time, a Delta version, a generator's parameters), so an unchanged input is
not written again. A missing or corrupt input raises :class:`~pipelines.errors.SourceError`
naming its path; the file is left where it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from pipelines.errors import SourceError, StorageError
from pipelines.sources import synthetic
from pipelines.spec import (
    DeltaSource,
    FileSource,
    Interval,
    PipelineSpec,
    SyntheticSource,
    TableSpec,
)

__all__ = ["SourceRead", "read_source", "synthetic"]


@dataclass
class SourceRead:
    frame: pl.DataFrame
    identity: dict[str, Any]


def _read_file(kind: str, path: Path) -> pl.DataFrame:
    try:
        if kind == "parquet":
            return pl.read_parquet(path)
        if kind == "csv":
            return pl.read_csv(path, try_parse_dates=True)
        return pl.read_ndjson(path)
    except Exception as exc:  # polars raises ComputeError, OSError, ... for a broken file
        raise SourceError(
            f"{path}: cannot read {kind} file ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
            "the file was left in place",
            path=str(path),
        ) from None


def _file_source(src: FileSource, region: str, interval: Interval) -> SourceRead:
    from pipelines.sources.files import file_path, stat_input

    path = file_path(src, region, interval)
    st = stat_input(path, required=src.required)  # names a missing file, a broken link, a symlink loop
    if st is None:
        return SourceRead(pl.DataFrame(), {"path": str(path), "missing": True})
    frame = _read_file(src.kind, path)
    return SourceRead(frame, {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns})


def _delta_source(src: DeltaSource, region: str, interval: Interval, options: dict[str, str]) -> SourceRead:
    from pipelines.storage import open_table, read_table

    uri = src.uri.format(region=region)
    dt = open_table(uri, options)
    if dt is None:
        raise SourceError(f"{uri}: source Delta table does not exist", path=uri)
    version = src.version if src.version is not None else dt.version()
    try:
        lf = read_table(uri, version=version, storage_options=options)
        if src.interval_column:
            lf = lf.filter(pl.col(src.interval_column) == interval.ds)
        frame = lf.collect()
    except (StorageError, pl.exceptions.PolarsError) as exc:
        raise SourceError(f"{uri}: cannot read source table at version {version}: {exc}", path=uri) from None
    return SourceRead(frame, {"uri": uri, "version": version})


def _check_partition(frame: pl.DataFrame, table: TableSpec, interval: Interval, where: str) -> None:
    """A delivered partition column (``ds``) must say the interval's value in every row."""
    for col, want in interval.partition(table.partition_by).items():
        if col not in frame.columns or frame.is_empty():
            continue
        values = frame[col].cast(pl.String)
        wrong = values.filter(values.is_null() | (values != want))
        if wrong.len():
            shown = sorted({str(v) for v in wrong.unique().head(3).to_list()})
            raise SourceError(f"{where}: column {col!r} says {', '.join(shown)} in {wrong.len()} of "
                              f"{frame.height} rows, but the interval is {col}={want}", path=where)


def conform(frame: pl.DataFrame, table: TableSpec, where: str) -> pl.DataFrame:
    """Give text-format inputs their types: the declared columns, and the event time as UTC.

    A declared column the input lacks, or a value that is not of its declared type, is one
    SourceError naming the input and the column."""
    if table.columns and frame.width:
        missing = [c.name for c in table.columns if c.name not in frame.columns and c.name not in table.partition_by]
        if missing:
            raise SourceError(f"{where}: column(s) {', '.join(repr(c) for c in missing)} missing (declared by "
                              f"{table.path}); the input has {', '.join(frame.columns)}", path=where)
    from pipelines.sources.files import TEXT_CHECKED, bad_value

    try:
        casts: dict[str, Any] = {c.name: getattr(pl, c.dtype) for c in table.columns if c.name in frame.columns}
        et = table.event_time
        if et and et in frame.columns and frame.schema[et] == pl.String and et not in casts:
            casts[et] = pl.Datetime("us", "UTC")  # an event time given as text is UTC unless it says otherwise
        parsed = []
        for name, dtype in list(casts.items()):
            if frame.schema[name] == pl.String and dtype in TEXT_CHECKED:
                # one clear error naming the column and value, else the parsed column
                parsed.append(bad_value(frame[name], dtype, where).alias(name))
                del casts[name]
        if parsed:
            frame = frame.with_columns(parsed)
        if casts:
            frame = frame.cast(casts, strict=True)  # type: ignore[arg-type]
        parts = [c for c in table.partition_by if c in frame.columns and frame.schema[c] != pl.String]
        if parts:  # partition values are strings ('2026-01-01'), whatever a CSV reader guessed
            frame = frame.with_columns(pl.col(parts).cast(pl.String))
    except (pl.exceptions.PolarsError, AttributeError) as exc:
        raise SourceError(f"{where}: columns do not match the declared types of {table.path}: {exc}", path=where) from None
    return frame


def read_source(spec: PipelineSpec, table: TableSpec, region: str, interval: Interval) -> SourceRead:
    """Read ``table``'s source for one region and interval."""
    read = _read(spec, table, region, interval)
    where = str(read.identity.get("path") or read.identity.get("uri") or table.source)
    if "path" in read.identity:
        _check_partition(read.frame, table, interval, where)
    read.frame = conform(read.frame, table, where)
    return read


def _read(spec: PipelineSpec, table: TableSpec, region: str, interval: Interval) -> SourceRead:
    assert table.source is not None
    src = spec.sources[table.source]
    if isinstance(src, SyntheticSource):
        identity = {"synthetic": src.model_dump(mode="json"), "region": region, "ds": interval.ds, "regions": spec.regions}
        frame = synthetic.for_interval(  # a day, or the cut of its day an hourly / 15-minute interval holds
            src.dataset, region, interval.start, interval.end, regions=spec.regions, rows=src.rows_per_region,
            merchants=src.merchants, seed=src.seed, faults=src.faults,
        )
        return SourceRead(frame, identity)
    if isinstance(src, FileSource):
        return _file_source(src, region, interval)
    return _delta_source(src, region, interval, spec.region_options(region))
