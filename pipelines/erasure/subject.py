"""What an erasure deletes: the subject (a column and its values) and the tables holding it.

Everything here reads; nothing is written. Bad input is one :class:`~pipelines.errors.SpecError`
naming the field, the file or the value: an empty value list, a values file that cannot be read,
a column no raw table of the pipeline has, a value the column's type cannot hold.

The tables searched are, in every region, each raw and feature table and its quarantine
table; a table without the column is skipped (its rows cannot be the subject's; a derived
table is recomputed from the erased raw data anyway).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from pipelines.control.erasures import values_digest
from pipelines.errors import SpecError
from pipelines.spec import PipelineSpec, TableSpec
from pipelines.storage import open_table


@dataclass(frozen=True)
class Target:
    """One Delta table of one region the erasure searches."""

    region: str
    table: TableSpec
    layer: str  # raw | features | quarantine
    uri: str

    @property
    def path(self) -> str:
        return f"{self.region}/{self.layer}/{self.table.name}"


@dataclass
class Subject:
    """The data subject: values of one column, typed as the tables hold them."""

    column: str
    values: list[Any]
    dtype: str
    targets: list[Target] = field(default_factory=list)
    key: bytes = field(default=b"", repr=False)  # the deployment's hash key: the digest is keyed

    @property
    def digest(self) -> str:
        return values_digest(self.column, self.values, self.key)

    def matches(self) -> pl.Expr:
        return pl.col(self.column).is_in(self.values)


def read_values(values: list[str], values_file: str | None) -> list[str]:
    """The values given (``--value``) and those of ``values_file`` (one a line; blank lines and
    ``#`` comments skipped), deduplicated in order; an empty result or an unreadable file is refused."""
    out = [v.strip() for v in values]
    if values_file is not None:
        try:
            text = Path(values_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            raise SpecError(f"--values-file: cannot read {values_file}: {why}") from None
        out += [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    out = [v for v in out if v]
    if not out:
        raise SpecError("erase: no values to erase: give --value V (repeatable) or --values-file F with one a line")
    return list(dict.fromkeys(out))


def _typed(column: str, dtype: pl.DataType, raw: list[str]) -> list[Any]:
    if dtype.is_integer():
        cast: Any = int
    elif dtype.is_float():
        cast = float
    elif dtype == pl.String:
        return raw
    else:
        raise SpecError(f"--column {column}: a {dtype} column cannot be erased by value (integer, float and string "
                        "columns can)")
    out = []
    for v in raw:
        try:
            out.append(cast(v))
        except ValueError:
            raise SpecError(f"--value {v!r}: not a value of column {column} ({dtype})") from None
    return out


def find_subject(spec: PipelineSpec, column: str, values: list[str], *, root: str | None = None) -> Subject:
    """The subject and every table that holds ``column``, checked before anything is written."""
    found: list[tuple[Target, pl.DataType]] = []
    raw_columns: dict[str, list[str]] = {}
    for region in spec.regions:
        opts = spec.region_options(region)
        for t in spec.tables:
            if t.layer not in ("raw", "features"):
                continue
            for layer in (t.layer, "quarantine"):
                uri = spec.table_uri(region, layer, t.name, root)
                dt = open_table(uri, opts)
                if dt is None:
                    continue
                schema = pl.DataFrame(schema=dict(pl.scan_delta(uri, version=dt.version(), storage_options=opts or None)
                                                  .collect_schema())).schema
                if layer == "raw":
                    raw_columns.setdefault(t.name, list(schema))
                if column in schema:
                    found.append((Target(region, t, layer, uri), schema[column]))
    if not raw_columns:
        raise SpecError(f"{spec.name}: no raw table has been written yet under {spec.root(root)}: nothing to erase")
    if not any(target.layer == "raw" for target, _ in found):
        listed = "; ".join(f"{name}: {', '.join(cols)}" for name, cols in raw_columns.items())
        raise SpecError(f"--column {column!r}: no raw table of {spec.name} has this column (raw tables: {listed})")
    dtype = next(d for target, d in found if target.layer == "raw")
    from pipelines.privacy import hash_key

    return Subject(column, _typed(column, dtype, values), str(dtype), [t for t, _ in found], key=hash_key(spec, root))
