"""Region profiles: what a region publishes about one interval of one table version.

The step that writes a table version computes its profile where the data lives, from the
frame it just wrote, and publishes it to the evidence store. The gate decides from profiles
alone, so a profile holds everything a cross-region check needs:

* ``rows``, control ``totals`` (sums of the spec's control-total columns) and, for a raw
  table written by ingest, the ``source`` totals it was landed from;
* ``event_min`` / ``event_max`` of the table's event-time column (freshness);
* ``schema`` (names, Delta types, nullability) and the ``feature_version`` values (schema);
* ``digest``: the row-hash digest tree of a table a parity check names - row count, the
  whole-table sum of ``lockstep-rowhash-1`` row hashes and the first level of bucket sums;
  up to :data:`KEYED_LIMIT` rows, also every row's key values, key hash, row hash and
  per-column hashes (``keyed``), enough to name differing keys and columns without asking
  the region;
* ``hist``: for each drift column, the counts of its values over the drift module's
  order-preserving cells (the same cells the gate's PSI and KS are computed over, so a
  decision from profiles equals one from the rows);
* ``quarantine``: when validation moved rows aside to produce this version, the quarantine
  table's version and totals, so the rows moved still count with their table;
* ``files``: the interval's data files at the version, as the Delta log names them, each
  with the sha256 and size of its bytes (taken from the bytes the write put): what a
  certification binds, so a certified read refuses a file replaced behind Delta's back.

A profile is bound to ``(region, layer, table, interval, Delta version)`` and to the hash of
the plan it was computed under (:func:`profile_plan`): change what the spec asks to profile
and older profiles no longer count (the gate blocks with "stale profile").
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import polars as pl

from pipelines.errors import EvidenceError
from pipelines.privacy import Masker
from pipelines.spec import PipelineSpec, TableSpec

PROFILE_VERSION = "lockstep-profile-1"
KEYED_LIMIT = 100_000


def profile_plan(spec: PipelineSpec, table: TableSpec) -> dict[str, Any]:
    """What the spec asks a profile of ``table`` to hold (its hash binds the profile)."""
    from pipelines.evidence.cells import CELL_BITS
    from pipelines.evidence.rowhash import HASH_VERSION

    rec = spec.reconcile
    parity = next((c for c in rec.parity if c.table == table.name), None)
    return {
        "profile": PROFILE_VERSION,
        "hash": HASH_VERSION,
        "cell_bits": CELL_BITS,
        "totals": list(rec.control_totals.columns) if rec.control_totals is not None else [],
        "drift": sorted({c for d in rec.drift if d.table == table.name for c in d.columns}),
        "parity": None if parity is None else {"keys": parity.keys, "columns": parity.columns,
                                               "buckets": parity.buckets},
        "event_time": table.event_time,
        "partition_by": table.partition_by,
    }


def plan_hash(plan: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(plan, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class Profile:
    """One region's evidence about one interval of one table version."""

    pipeline: str
    region: str
    layer: str
    table: str
    interval: str
    version: int
    plan_hash: str
    fingerprint: int | None = None
    run_id: str = ""
    rows: int = 0
    totals: dict[str, float] = field(default_factory=dict)
    source: dict[str, float] | None = None
    event_min: datetime | None = None
    event_max: datetime | None = None
    schema: list[list[Any]] = field(default_factory=list)
    feature_versions: list[str] = field(default_factory=list)
    digest: dict[str, Any] | None = None
    quarantine: dict[str, Any] | None = None
    #: a derived version's lineage: each input ("raw/transactions") -> {"version": the input's
    #: Delta version read, "partitions": {partition key: [data file paths read]}}, the lookback's
    #: partitions included (empty for a table nothing derives)
    inputs: dict[str, Any] = field(default_factory=dict)
    #: the interval's data files at ``version``: path as the Delta log names it -> {"sha256", "size"}
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    hist_data: dict[str, tuple[np.ndarray, np.ndarray]] | None = None
    hist_raw: bytes = b""  # parquet of the drift cell counts (decoded on first use)
    keyed_raw: bytes = b""  # parquet of the keyed digest rows (decoded on demand)
    keyed_loader: Any = None  # fetches keyed_raw from the store when it was not read with the profile
    recorded_at: datetime | None = None
    nbytes: int = 0  # bytes of this profile as stored (what reading it costs)

    @property
    def member(self) -> str:
        return f"{self.region}/{self.layer}/{self.table}"

    # -- serialisation: a small JSON summary and two binary blobs (parquet)
    def summary_json(self) -> str:
        return json.dumps({
            "rows": self.rows, "totals": self.totals, "source": self.source,
            "event_min": None if self.event_min is None else self.event_min.isoformat(),
            "event_max": None if self.event_max is None else self.event_max.isoformat(),
            "schema": self.schema, "feature_versions": self.feature_versions, "digest": self.digest,
            "quarantine": self.quarantine, "inputs": self.inputs, "files": self.files,
        }, sort_keys=True)

    @property
    def hist(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Drift column -> (non-empty cells, counts)."""
        if self.hist_data is None:
            self.hist_data = {}
            if self.hist_raw:
                h = pl.read_parquet(io.BytesIO(self.hist_raw))
                col = h["column"]
                starts = (col != col.shift(1)).fill_null(True).arg_true().to_list()
                if h.height and len(starts) == col.n_unique():  # each column's cells in one run, as written: slice them
                    cells, counts = h["cell"].to_numpy(), h["count"].to_numpy()
                    for s, e in zip(starts, [*starts[1:], h.height], strict=True):
                        self.hist_data[str(col[s])] = (cells[s:e], counts[s:e])
                elif h.height:
                    for (name,), part in h.group_by(["column"], maintain_order=True):
                        self.hist_data[str(name)] = (part["cell"].to_numpy(), part["count"].to_numpy())
        return self.hist_data

    def hist_bytes(self) -> bytes:
        if self.hist_raw:
            return self.hist_raw
        if not self.hist:
            return b""
        frame = pl.concat([
            pl.DataFrame({"column": pl.Series([c] * len(cells), dtype=pl.String),
                          "cell": pl.Series(cells, dtype=pl.Int64), "count": pl.Series(counts, dtype=pl.Int64)})
            for c, (cells, counts) in self.hist.items()
        ])
        return _parquet(frame)

    @property
    def keyed(self) -> pl.DataFrame | None:
        """Key values, key hash, row hash and per-column hashes of every row (small tables;
        read from the store only when a parity descent needs it)."""
        if not self.keyed_raw and self.keyed_loader is not None and self.digest is not None:
            self.keyed_raw = self.keyed_loader(self)
            self.nbytes += len(self.keyed_raw)
            self.keyed_loader = None
        return pl.read_parquet(io.BytesIO(self.keyed_raw)) if self.keyed_raw else None

    @classmethod
    def decode(cls, row: dict[str, Any]) -> Profile:
        s = json.loads(row["summary"])
        return cls(
            pipeline=row["pipeline"], region=row["region"], layer=row["layer"], table=row["table"],
            interval=row["interval"], version=int(row["version"]), plan_hash=row["plan_hash"],
            fingerprint=row.get("fingerprint"), run_id=row.get("run_id") or "", rows=int(s["rows"]),
            totals=s["totals"], source=s.get("source"),
            event_min=None if s["event_min"] is None else datetime.fromisoformat(s["event_min"]),
            event_max=None if s["event_max"] is None else datetime.fromisoformat(s["event_max"]),
            schema=s["schema"], feature_versions=s["feature_versions"], digest=s.get("digest"),
            quarantine=s.get("quarantine"), inputs=s.get("inputs") or {}, files=s.get("files") or {}, hist_raw=row.get("hist") or b"", keyed_raw=row.get("keyed") or b"", recorded_at=row.get("recorded_at"),
            nbytes=len(row["summary"]) + len(row.get("hist") or b"") + len(row.get("keyed") or b""),
        )


def _parquet(frame: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.write_parquet(buf, compression="zstd")
    return buf.getvalue()


def totals_of(frame: pl.DataFrame, columns: list[str]) -> dict[str, float]:
    """{"rows": n, column: sum, ...}; a column the frame lacks sums to 0."""
    present = [c for c in columns if c in frame.columns]
    row = frame.select(pl.len().alias("rows"), *[pl.col(c).cast(pl.Float64).sum().alias(c) for c in present]).row(0, named=True)
    return {"rows": int(row["rows"]), **{c: float(row.get(c) or 0.0) for c in columns}}


def _hist(frame: pl.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray]:
    from pipelines.evidence.cells import CELL_BITS, cells

    if column not in frame.columns:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    s = frame[column]
    if not (s.dtype.is_numeric() or s.dtype == pl.Boolean):
        raise EvidenceError(f"drift column {column!r} has type {s.dtype}; drift needs a numeric column")
    s = s.drop_nulls()
    if s.dtype.is_float():
        s = s.filter(~s.is_nan())
    k = cells(s.cast(pl.Float64).to_numpy())
    if len(k) > 1 << 18:
        counts = np.bincount(k, minlength=1 << CELL_BITS)
        nz = np.flatnonzero(counts)
        return nz.astype(np.int64), counts[nz].astype(np.int64)
    uniq, cnt = np.unique(k, return_counts=True)
    return uniq.astype(np.int64), cnt.astype(np.int64)


def _digest(frame: pl.DataFrame, keys: list[str], columns: list[str], buckets: int,
            masker: Masker | None = None, personal: frozenset[str] = frozenset()) -> tuple[dict[str, Any], pl.DataFrame | None]:
    from pipelines.evidence.digest import first_level_bits, level_sums
    from pipelines.evidence.hashing import column_hash, hashes
    from pipelines.evidence.rowhash import HASH_VERSION

    missing = [c for c in [*keys, *columns] if c not in frame.columns]
    if missing:
        raise EvidenceError(f"parity column(s) {missing} not in the table")
    kh, rh = hashes(frame, keys, [*keys, *columns])
    bits = first_level_bits(buckets)
    digest = {
        "hash": HASH_VERSION, "rows": frame.height, "total": int(rh.sum(dtype=np.uint64)) if frame.height else 0,
        "keys": keys, "columns": columns, "bits": bits,
        "level": [int(x) for x in level_sums(kh, rh, bits)],
    }
    keyed = None
    if frame.height <= KEYED_LIMIT:
        keyed = frame.select(keys).with_columns(
            pl.Series("_kh", kh, dtype=pl.UInt64), pl.Series("_rh", rh, dtype=pl.UInt64),
            *[pl.Series(f"_c_{c}", column_hash(frame[c]), dtype=pl.UInt64) for c in columns],
        )
        if masker is not None and personal & set(keys):
            # the key values that name a differing row leave the region: a personal key only as its keyed hash
            keyed = masker.frame(keyed, personal & set(keys))
    return digest, keyed


def build_profile(
    spec: PipelineSpec, region: str, table: TableSpec, layer: str, interval_key: str, frame: pl.DataFrame, *,
    version: int, schema: list[list[Any]], fingerprint: int | None = None, run_id: str = "",
    source: dict[str, float] | None = None, quarantine: dict[str, Any] | None = None,
    inputs: dict[str, Any] | None = None, files: dict[str, dict[str, Any]] | None = None, root: str | None = None,
) -> Profile:
    """The profile of ``frame`` (one interval's rows of ``table`` at Delta ``version``).
    ``files``: the interval's data files at that version with their hashes (the write's
    :attr:`~pipelines.storage.TableRef.files`)."""
    plan = profile_plan(spec, table)
    frame = frame.drop([c for c in table.partition_by if c in frame.columns])
    p = Profile(pipeline=spec.name, region=region, layer=layer, table=table.name, interval=interval_key,
                version=version, plan_hash=plan_hash(plan), fingerprint=fingerprint, run_id=run_id,
                source=source, quarantine=quarantine, schema=schema, inputs=inputs or {},
                files=dict(files or {}))
    p.rows = frame.height
    p.totals = totals_of(frame, plan["totals"])
    col = table.event_time
    if col is not None and col in frame.columns and frame.height:
        lo, hi = frame.select(pl.col(col).min().alias("lo"), pl.col(col).max().alias("hi")).row(0)
        p.event_min, p.event_max = lo, hi
    if "feature_version" in frame.columns:
        p.feature_versions = sorted(str(v) for v in frame["feature_version"].drop_nulls().unique().to_list())
    if layer != "quarantine":
        for c in plan["drift"]:
            p.hist[c] = _hist(frame, c)
        if plan["parity"] is not None:
            par = plan["parity"]
            cols = par["columns"] or [c for c in frame.columns if c not in par["keys"]]
            p.digest, keyed = _digest(frame, par["keys"], cols, par["buckets"], Masker(spec, root), table.personal)
            p.keyed_raw = b"" if keyed is None else _parquet(keyed)
    return p
