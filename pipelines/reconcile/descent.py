"""The digest-tree descent: comparing two sides by key, with traffic that scales with the difference.

Each region hashes its own rows where they live (a side, :mod:`pipelines.reconcile.sides`): a key hash places a row in
one of ``2**leaf_bits`` leaf buckets, and a bucket's digest is the sum (mod 2**64) of its
rows' stable row hashes (:mod:`pipelines.evidence.hashing`, summed by
:mod:`pipelines.evidence.digest`). Sums add up, so a parent
bucket's digest is the sum of its children's and the whole-table digest is the root.

:func:`compare` is the coordinator; it sits with side A and talks to side B:

1. B sends (rows, whole-table digest): 16 bytes answer "in sync?".
2. B sends the digests of the first level (``buckets`` of the spec); A keeps the buckets
   whose digests differ and asks for their children, level by level (fan-out 4), down to
   leaves of a few rows each.
3. For the mismatched leaves only, B sends (key hash, row hash) pairs: A now knows which
   key hashes exist only on one side and which rows changed.
4. B sends the key values of rows only B holds, and the per-column hashes of changed rows,
   which name the differing columns. In ``shared`` residency B also sends the values of a
   few sample rows; in ``strict`` residency no column value ever leaves B: only keys,
   digests and column hashes cross.

Every reply and request is counted in :class:`Traffic` (bytes moved between regions). With
``d`` differing keys among ``n`` rows the traffic is about ``d * log(n / d)`` digests, not
``n`` rows.

Each descent is one INFO line (the sides, buckets compared and mismatched, bytes moved);
no key or column value is logged.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from pipelines.errors import ReconciliationError
from pipelines.reconcile.sides import Side

log = logging.getLogger(__name__)
FANOUT_BITS = 2  # each tree level splits a bucket in 4
ROWS_PER_LEAF = 4
MAX_LEAF_BITS = 24
SAMPLES = 20


@dataclass
class Traffic:
    """Bytes that crossed between the two sides of one comparison."""

    received: int = 0  # B -> A
    sent: int = 0  # A -> B (requests)
    rounds: int = 0

    def recv(self, nbytes: float) -> None:
        self.received += int(nbytes)
        self.rounds += 1

    def send(self, nbytes: float) -> None:
        self.sent += int(nbytes)

    @property
    def total(self) -> int:
        return self.received + self.sent


@dataclass
class ParityReport:
    """What differs between two tables, by key. Key frames hold the key columns."""

    rows_a: int
    rows_b: int
    in_sync: bool
    only_in_a: pl.DataFrame
    only_in_b: pl.DataFrame
    changed: pl.DataFrame  # key columns + "columns": list of differing column names
    changed_columns: dict[str, int]
    traffic: Traffic
    buckets_compared: int = 0
    buckets_mismatched: int = 0
    samples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def differing(self) -> int:
        return self.only_in_a.height + self.only_in_b.height + self.changed.height

    def keys_frame(self) -> pl.DataFrame:
        """Every differing key with its kind: only_in_a, only_in_b, changed."""
        parts = [
            self.only_in_a.with_columns(kind=pl.lit("only_in_a"), columns=pl.lit([], dtype=pl.List(pl.String))),
            self.only_in_b.with_columns(kind=pl.lit("only_in_b"), columns=pl.lit([], dtype=pl.List(pl.String))),
            self.changed.with_columns(kind=pl.lit("changed")).select([*self.changed.columns[:-1], "kind", "columns"]),
        ]
        return pl.concat(parts, how="vertical_relaxed")

    def summary(self, limit: int = SAMPLES) -> dict[str, Any]:
        def keys(df: pl.DataFrame) -> list[Any]:
            cols = [c for c in df.columns if c != "columns"]
            rows = df.head(limit).select(cols).rows()
            return [r[0] if len(r) == 1 else list(r) for r in rows]

        return {
            "rows_a": self.rows_a, "rows_b": self.rows_b, "in_sync": self.in_sync,
            "only_in_a": self.only_in_a.height, "only_in_b": self.only_in_b.height, "changed": self.changed.height,
            "changed_columns": self.changed_columns,
            "samples": {"only_in_a": keys(self.only_in_a), "only_in_b": keys(self.only_in_b),
                        "changed": keys(self.changed)},
            "bytes_moved": self.traffic.total, "rounds": self.traffic.rounds,
            "buckets_compared": self.buckets_compared, "buckets_mismatched": self.buckets_mismatched,
        }


def leaf_bits_for(rows: int, first_bits: int) -> int:
    """Leaf depth: about ROWS_PER_LEAF rows per leaf, on the fan-out grid below the first level."""
    want = max(first_bits, math.ceil(math.log2(max(1, rows) / ROWS_PER_LEAF)) if rows > ROWS_PER_LEAF else 0)
    steps = math.ceil((want - first_bits) / FANOUT_BITS)
    return min(MAX_LEAF_BITS, first_bits + steps * FANOUT_BITS)


def _empty_keys(side: Side) -> pl.DataFrame:
    return side.frame.select(side.keys).clear()


def compare(a: Side, b: Side, *, buckets: int = 256, strict: bool = False, samples: int = SAMPLES,
            what: str = "") -> ParityReport:
    """Compare two sides by key, moving data in proportion to their difference; ``what``
    names the table compared in the descent's log line."""
    if a.keys != b.keys:
        raise ReconciliationError(f"keys differ: {a.keys} vs {b.keys}")
    columns = [c for c in a.columns if c in b.columns]
    if columns != a.columns or columns != b.columns:
        raise ReconciliationError(
            f"compared columns differ: {a.name or 'a'} has {a.columns}, {b.name or 'b'} has {b.columns}")
    traffic = Traffic()
    rows_b, total_b = b.summary()
    traffic.recv(16)
    no_change = pl.DataFrame(schema={**_empty_keys(a).schema, "columns": pl.List(pl.String)})
    if (a.rows, a.total) == (rows_b, total_b):
        report = ParityReport(a.rows, rows_b, True, _empty_keys(a), _empty_keys(b), no_change, {}, traffic)
        _log_descent(what, a, b, report, 0)
        return report

    first_bits = max(0, math.ceil(math.log2(max(1, buckets))))
    leaf_bits = leaf_bits_for(max(a.rows, rows_b), first_bits)
    first_bits = min(first_bits, leaf_bits)
    traffic.send(4)
    a.set_depth(leaf_bits)
    b.set_depth(leaf_bits)
    bits = first_bits
    db = b.level_digests(bits)
    traffic.recv(8 * len(db))
    nodes = np.arange(1 << bits, dtype=np.int64)
    mism = nodes[a.level_digests(bits) != db]
    compared = len(nodes)
    while bits < leaf_bits and len(mism):
        step = min(FANOUT_BITS, leaf_bits - bits)
        traffic.send((4 if bits < 32 else 8) * len(mism))
        children = ((mism[:, None] << step) | np.arange(1 << step, dtype=np.int64)[None, :]).ravel()
        bits += step
        db = b.level_digests(bits, children)
        traffic.recv(8 * len(db))
        compared += len(children)
        mism = children[a.level_digests(bits, children) != db]

    traffic.send(4 * len(mism))
    kh_b, rh_b = b.leaf_rows(mism)
    traffic.recv(16 * len(kh_b))
    kh_a, rh_a = a.leaf_rows(mism)
    for side, kh in ((a, kh_a), (b, kh_b)):
        if len(np.unique(kh)) != len(kh):
            raise ReconciliationError(f"{side.name or 'table'}: keys {side.keys} are not unique")
    only_a = np.setdiff1d(kh_a, kh_b, assume_unique=True)
    only_b = np.setdiff1d(kh_b, kh_a, assume_unique=True)
    common, ia, ib = np.intersect1d(kh_a, kh_b, assume_unique=True, return_indices=True)
    changed = common[rh_a[ia] != rh_b[ib]]

    traffic.send(8 * len(only_b))
    keys_b = b.key_values(only_b)
    traffic.recv(keys_b.estimated_size())
    keys_a = a.key_values(only_a)

    changed_columns: dict[str, int] = {}
    changed_frame = no_change
    sample_rows: list[dict[str, Any]] = []
    if len(changed):
        traffic.send(8 * len(changed))
        ch_b = b.column_hashes(changed)
        traffic.recv(8 * len(changed) * max(1, len(ch_b)))
        ch_a = a.column_hashes(changed)
        diff = {c: ch_a[c] != ch_b[c] for c in columns}
        changed_columns = {c: int(m.sum()) for c, m in diff.items() if m.any()}
        names = np.array(columns, dtype=object)
        matrix = np.column_stack([diff[c] for c in columns]) if columns else np.zeros((len(changed), 0), bool)
        col_lists = [list(names[row]) for row in matrix]
        changed_frame = a.key_values(changed).with_columns(pl.Series("columns", col_lists, dtype=pl.List(pl.String)))
        if not strict and samples:
            pick = changed[:samples]
            traffic.send(8 * len(pick))
            vb = b.values(pick)
            traffic.recv(0 if vb is None else vb.estimated_size())
            va = a.values(pick)
            pairs = [] if va is None or vb is None else list(zip(
                va.iter_rows(named=True), vb.iter_rows(named=True), col_lists[:samples], strict=True))
            for ra, rb, cols in pairs:
                sample_rows.append({
                    "key": {k: ra[k] for k in a.keys},
                    "columns": {c: {"a": ra[c], "b": rb[c]} for c in cols},
                })
    report = ParityReport(
        a.rows, rows_b, False, keys_a, keys_b, changed_frame, changed_columns, traffic,
        buckets_compared=compared, buckets_mismatched=int(len(mism)), samples=sample_rows,
    )
    _log_descent(what, a, b, report, leaf_bits)
    return report


def _log_descent(what: str, a: Side, b: Side, report: ParityReport, leaf_bits: int) -> None:
    """One INFO line per descent: the table, the sides (regions), buckets descended, bytes moved;
    counts only (never a key or column value)."""
    log.info("digest-tree descent %s: %s (%d rows) vs %s (%d rows): %s; %d bucket(s) compared, %d mismatched "
             "(leaf depth %d bits); %d byte(s) moved in %d round(s)",
             what or "table", a.name or "a", report.rows_a, b.name or "b", report.rows_b,
             "in sync" if report.in_sync else f"{report.differing} differing key(s)",
             report.buckets_compared, report.buckets_mismatched, leaf_bits, report.traffic.total,
             report.traffic.rounds)
