"""The leak scan: every output Lockstep wrote, searched for the raw personal values of the
source data (card ids and transaction ids). Reusable: the demo's and the hourly demo's
tests call :func:`scan` with what they captured.

What is searched:

* every file under the control root's ``_lockstep`` (Delta control tables read with polars,
  every column as text, their ``_delta_log`` commits with the column statistics, evidence,
  Data Docs pages and their JSON, the model registry) and, byte for byte, the files themselves;
* any further files (lineage events, Airflow task logs) and texts (``--json`` outputs,
  alert bodies, captured log lines) a test hands in.

A value is found where it occurs as a whole token: transaction ids look like
``eu-west:2026-01-01:00000012``; card ids are searched when they have ten digits or more
(cards issued outside the first region, ``home * 10**9 + n``: shorter ids would be found in
any count or timestamp).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from pipelines.spec import Interval, PipelineSpec, SyntheticSource

TXN_ID = re.compile(r"[a-z][a-z0-9-]{1,31}:\d{4}-\d{2}-\d{2}(?:T\d{2}(?::\d{2})?)?:\d{8}")
CARD_ID = re.compile(r"(?<![\w.])\d{10,}(?![\w.])")


@dataclass
class Personal:
    """The raw values to look for."""

    txn_ids: set[str] = field(default_factory=set)
    card_ids: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, frames: Iterable[pl.DataFrame]) -> Personal:
        out = cls()
        for df in frames:
            if "txn_id" in df.columns:
                out.txn_ids.update(df["txn_id"].cast(pl.String).drop_nulls().to_list())
            if "card_id" in df.columns:
                out.card_ids.update(str(v) for v in df["card_id"].drop_nulls().to_list() if len(str(v)) >= 10)
        return out

    @classmethod
    def of_source(cls, spec: PipelineSpec, intervals: Iterable[Interval]) -> Personal:
        """The transactions a spec's synthetic source delivers in ``intervals``, every region
        (duplicates included: the rows quarantine takes away are in the source too)."""
        from pipelines.sources.synthetic import for_interval

        src = spec.sources["transactions"]
        assert isinstance(src, SyntheticSource)
        return cls.of(for_interval("transactions", region, iv.start, iv.end, regions=spec.regions,
                                   rows=src.rows_per_region, merchants=src.merchants, seed=src.seed,
                                   faults=src.faults)
                      for iv in intervals for region in spec.regions)

    def __bool__(self) -> bool:
        return bool(self.txn_ids or self.card_ids)

    def found_in(self, text: str) -> set[str]:
        hits = {m for m in TXN_ID.findall(text) if m in self.txn_ids}
        hits |= {m for m in CARD_ID.findall(text) if m in self.card_ids}
        return hits


def _cell_text(value: object) -> str:
    """A cell as text; a cell holding a Parquet file (a profile's keyed digest) by its rows."""
    if isinstance(value, bytes) and value[:4] == b"PAR1":
        embedded = pl.read_parquet(io.BytesIO(value))
        return "\n".join(repr(row) for row in embedded.iter_rows())
    return repr(value)


def _table_text(path: Path) -> str:
    """A Delta table's rows, every column as text (nested and binary values by their Python
    repr, an embedded Parquet file by its rows)."""
    import deltalake

    frame = pl.from_arrow(deltalake.DeltaTable(str(path)).to_pyarrow_table())
    assert isinstance(frame, pl.DataFrame)
    return "\n".join(" ".join(_cell_text(v) for v in row) for row in frame.iter_rows())


def control_tables(control_root: Path) -> list[Path]:
    return sorted(p.parent for p in control_root.rglob("_delta_log") if "_lockstep" in p.parts)


def scan(values: Personal, *, control_root: str | Path, files: Iterable[Path] = (),
         texts: dict[str, str] | None = None) -> dict[str, set[str]]:
    """Where each raw value was found: ``{place: values}`` (empty: no leak)."""
    assert values, "nothing to look for: the scan would pass vacuously"
    found: dict[str, set[str]] = {}

    def look(place: str, text: str) -> None:
        hits = values.found_in(text)
        if hits:
            found.setdefault(place, set()).update(hits)

    lockstep = [p for p in Path(control_root).rglob("_lockstep") if p.is_dir()]
    assert lockstep, f"no _lockstep under {control_root}"
    for base in lockstep:
        for table in control_tables(base):
            look(f"table {table}", _table_text(table))
        for f in base.rglob("*"):
            if f.is_file():
                look(f"file {f}", f.read_bytes().decode("latin-1"))
    for f in files:
        if f.is_file():
            look(f"file {f}", f.read_bytes().decode("latin-1"))
    for place, text in (texts or {}).items():
        look(place, text)
    return found
