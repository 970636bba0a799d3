"""Input files as delivered: where a region's file for an interval is, whether it can be read,
and which value of a column is not of its declared type. Shared by the file source and the
preflight, so a bad delivery gets the same one-line error before and during a run."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import polars as pl

from pipelines.errors import SourceError
from pipelines.spec import FileSource, Interval


def file_path(src: FileSource, region: str, interval: Interval) -> Path:
    return Path(src.path.format(region=region, ds=interval.ds, hour=f"{interval.hour:02d}")).expanduser()


def stat_input(path: Path, *, required: bool) -> os.stat_result | None:
    """The file's status; None when it is absent and not required; else a clear SourceError."""
    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SourceError(f"{path}: symbolic link loop (the link points back to itself)", path=str(path)) from None
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            if os.path.islink(path):
                raise SourceError(f"{path}: broken symbolic link (its target {os.readlink(path)} is missing)",
                                  path=str(path), retryable=True) from None
            if not required:
                return None
            raise SourceError(f"{path}: expected input file is missing", path=str(path), retryable=True) from None
        raise SourceError(f"{path}: cannot read input file ({exc.strerror})", path=str(path)) from None
    if not os.path.isfile(path):
        raise SourceError(f"{path}: expected a file, found a folder", path=str(path))
    if not os.access(path, os.R_OK):
        raise SourceError(f"{path}: input file is not readable (permission denied)", path=str(path))
    return st


#: the types a text input (csv, jsonl) is checked and converted to, value by value
TEXT_CHECKED = (pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64,
                pl.Float32, pl.Float64, pl.Boolean, pl.Date, pl.Datetime)


def parse_text(values: pl.Series, dtype: Any) -> pl.Series:
    """``values`` (text) as ``dtype``; a value that is not one becomes null. Dates are ISO
    (2026-01-01); timestamps ISO 8601, naive ones read as UTC, offsets converted to UTC."""
    text = values.cast(pl.String).str.strip_chars()
    if dtype == pl.Boolean:
        return text.str.to_lowercase().replace_strict({"true": True, "false": False}, default=None,
                                                      return_dtype=pl.Boolean)
    if dtype == pl.Date:
        return text.str.to_date("%Y-%m-%d", strict=False)
    if dtype == pl.Datetime:
        want = dtype if isinstance(dtype, pl.Datetime) else pl.Datetime("us")
        parsed = text.str.to_datetime(time_unit=want.time_unit or "us", time_zone="UTC", strict=False)
        return parsed.dt.convert_time_zone(want.time_zone) if want.time_zone else parsed.dt.replace_time_zone(None)
    return text.cast(dtype, strict=False)


def bad_value(values: pl.Series, dtype: Any, path: Path | str) -> pl.Series:
    """``values`` as ``dtype`` (:func:`parse_text`); a SourceError naming the file, the column
    and the first value that is not a ``dtype`` (row numbers count from 1, the header excluded)."""
    text = values.cast(pl.String)
    parsed = parse_text(values, dtype)
    bad = (parsed.is_null() & text.is_not_null()).arg_true()
    if bad.len():
        row = int(bad[0])
        raise SourceError(f"{path}: column {values.name!r}: {text[row]!r} (row {row + 1}) is not {dtype}; "
                          f"{bad.len()} bad value(s)", path=str(path), column=values.name)
    return parsed
