"""Preflight of an interval's input files (present, readable, declared columns, parseable values,
the interval's partition) and of the global control file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from pipelines.errors import (
    SourceError,
)
from pipelines.preflight.common import declared_schema, file_schema, first_line, spec_where
from pipelines.sources.files import TEXT_CHECKED, bad_value, file_path, parse_text, stat_input
from pipelines.spec import FileSource, Interval, PipelineSpec, TableSpec


def check_input_file(
    src: FileSource, t: TableSpec, region: str, interval: Interval, *, target: pl.Schema | None = None,
) -> None:
    """One region's input file for one interval: present, readable, declared columns, values
    of the table's types, and the interval's partition values."""
    path = file_path(src, region, interval)
    if stat_input(path, required=src.required) is None:
        return
    have = file_schema(src.kind, path)
    declared = declared_schema(t)
    expected = declared if declared is not None else target
    if declared is not None:
        missing = [c for c in declared.names() if c not in have and c not in t.partition_by]
        if missing:
            raise SourceError(f"{path}: column(s) {', '.join(repr(c) for c in missing)} missing "
                              f"(declared by {t.path}); the file has {', '.join(have.names())}", path=str(path))
    elif target is not None:
        missing = [c for c in target.names() if c not in have and c not in t.partition_by]
        if missing:
            raise SourceError(f"{path}: column(s) {', '.join(repr(c) for c in missing)} missing "
                              f"({t.path} holds them); the file has {', '.join(have.names())}", path=str(path))
    parts = {p: v for p, v in interval.partition(t.partition_by).items() if p in have}
    typed = {c: dt for c, dt in (expected or {}).items()
             if c in have and c not in parts and dt in TEXT_CHECKED and have[c] != dt
             and (have[c] == pl.String or dt not in (pl.Date, pl.Datetime))}  # temporal: text inputs
    if not parts and not typed:
        return
    try:
        lf = _scan(src.kind, path, {c: pl.String for c in [*parts, *typed]})
        frame = lf.select([*parts, *typed]).collect()
    except Exception as exc:
        raise SourceError(f"{path}: cannot read {src.kind} file ({type(exc).__name__}: {first_line(exc)})",
                          path=str(path)) from None
    for col, want in parts.items():
        values = frame[col].cast(pl.String)
        wrong = values.filter(values.is_null() | (values != want))
        if wrong.len():
            shown = sorted({str(v) for v in wrong.unique().head(3).to_list()})
            raise SourceError(f"{path}: column {col!r} says {', '.join(shown)} in {wrong.len()} of "
                              f"{frame.height} rows, but the interval is {col}={want}", path=str(path))
    for col, dtype in typed.items():
        bad_value(frame[col], dtype, path)


def widened(schema: pl.Schema | None) -> pl.Schema | None:
    """A schema read from one region's file as what another region's file is held to: any
    integer column may hold decimals there (a number is a number), other types stay."""
    if schema is None:
        return None
    return pl.Schema({c: pl.Float64 if dt.is_integer() else dt for c, dt in schema.items()})


#: the types a text column of unknown type is tried as, in this order
_GUESSES = (pl.Int64, pl.Float64, pl.Boolean, pl.Datetime)


def check_mistyped_values(src: FileSource, t: TableSpec, region: str, interval: Interval) -> None:
    """A text file's (csv, jsonl) column read as text whose values are mostly of one type
    (integers, numbers, booleans, timestamps) but not all: a SourceError naming the file, the
    column and the first value that is not of that type. Called when a transform failed on
    the columns a file gave, so a few bad cells are named rather than the transform."""
    if src.kind not in ("csv", "jsonl"):
        return
    path = file_path(src, region, interval)
    if stat_input(path, required=src.required) is None:
        return
    have = file_schema(src.kind, path)
    text_cols = [c for c, dt in have.items() if dt == pl.String and c not in t.partition_by]
    if not text_cols:
        return
    try:
        frame = _scan(src.kind, path, {c: pl.String for c in text_cols}).select(text_cols).collect()
    except Exception as exc:
        raise SourceError(f"{path}: cannot read {src.kind} file ({type(exc).__name__}: {first_line(exc)})",
                          path=str(path)) from None
    for col in text_cols:
        values = frame[col]
        n = values.drop_nulls().len()
        for dtype in _GUESSES:
            ok = parse_text(values, dtype).drop_nulls().len()
            if 0 < n - ok and ok * 2 > n:  # a few values are not what the rest of the column is
                bad_value(values, dtype, path)


def _scan(kind: str, path: Path, as_string: dict[str, Any]) -> pl.LazyFrame:
    if kind == "csv":
        return pl.scan_csv(path, schema_overrides=as_string, infer_schema=True)
    if kind == "parquet":
        return pl.scan_parquet(path)
    return pl.scan_ndjson(path)


# control files
def check_control_file(spec: PipelineSpec, interval: Interval, root: str | None) -> None:
    ct = spec.reconcile.control_totals
    if ct is None or not ct.global_control:
        return
    from pipelines.storage import join_uri

    base = spec.root(root)
    path = Path(ct.global_control.format(ds=interval.ds, hour=f"{interval.hour:02d}",
                                         root=join_uri(base) if "://" not in base else base)).expanduser()
    if "://" in str(ct.global_control):
        return
    try:
        stat_input(path, required=True)
    except SourceError as exc:
        raise SourceError(f"{spec_where(spec)}: reconcile.control_totals.global_control: {exc}", path=str(path)) from None
