"""Replicated-table parity: a digest tree whose traffic scales with the difference.

Each region hashes its own rows where they live (:class:`Side`): a key hash places a row in
one of ``2**leaf_bits`` leaf buckets, and a bucket's digest is the sum (mod 2**64) of its
rows' stable row hashes (:mod:`pipelines.evidence.hashing`). Sums add up, so a parent
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
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from pipelines.errors import ReconciliationError
from pipelines.evidence.hashing import column_hash, hashes, leaf_sums, select_leaves

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


class Side:
    """One table where its data lives: hashes its rows and answers the coordinator.

    Everything a :class:`Side` returns is what would cross the network between regions.
    """

    def __init__(self, frame: pl.DataFrame, keys: list[str], columns: list[str], name: str = "") -> None:
        missing = [c for c in [*keys, *columns] if c not in frame.columns]
        if missing:
            raise ReconciliationError(f"{name or 'table'}: no column(s) {missing}")
        self.name = name
        self.keys = keys
        self.columns = [c for c in dict.fromkeys(columns) if c not in keys]
        self.frame = frame
        self.kh, self.rh = hashes(frame, keys, [*keys, *self.columns])
        self.rows = frame.height
        self.total = int(self.rh.sum(dtype=np.uint64)) if self.rows else 0
        self._leaf_bits = -1
        self._levels: dict[int, np.ndarray] = {}
        self._cand = np.zeros(0, dtype=np.int64)

    # -- what the coordinator may ask for
    def summary(self) -> tuple[int, int]:
        return self.rows, self.total

    def set_depth(self, leaf_bits: int) -> None:
        if leaf_bits == self._leaf_bits:
            return
        self._leaf_bits = leaf_bits
        self._levels = {leaf_bits: leaf_sums(self.kh, self.rh, leaf_bits)}

    def level_digests(self, bits: int, nodes: np.ndarray | None = None) -> np.ndarray:
        """Digests of the buckets ``nodes`` (all when None) of the level with ``2**bits`` buckets."""
        if bits not in self._levels:
            leaves = self._levels[self._leaf_bits]
            self._levels[bits] = leaves.reshape(1 << bits, -1).sum(axis=1, dtype=np.uint64)
        level = self._levels[bits]
        return level if nodes is None else level[nodes]

    def leaf_rows(self, leaves: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(key hash, row hash) of every row in ``leaves``."""
        want = np.zeros(1 << self._leaf_bits, dtype=bool)
        want[leaves] = True
        self._cand = select_leaves(self.kh, want, self._leaf_bits)
        return self.kh[self._cand], self.rh[self._cand]

    def _rows_for(self, key_hashes: np.ndarray) -> np.ndarray:
        sub = self.kh[self._cand]
        order = np.argsort(sub, kind="stable")
        pos = np.searchsorted(sub[order], key_hashes)
        return self._cand[order[pos]]

    def key_values(self, key_hashes: np.ndarray) -> pl.DataFrame:
        """The key columns of the rows with these key hashes (among the last leaf rows)."""
        return self.frame[self._rows_for(key_hashes)].select(self.keys)

    def column_hashes(self, key_hashes: np.ndarray) -> dict[str, np.ndarray]:
        """Per-column value hashes of the rows with these key hashes (no values leave)."""
        sub = self.frame[self._rows_for(key_hashes)]
        return {c: column_hash(sub[c]) for c in self.columns}

    def values(self, key_hashes: np.ndarray) -> pl.DataFrame | None:
        """Full rows (shared residency only; None when this side cannot show values)."""
        return self.frame[self._rows_for(key_hashes)].select([*self.keys, *self.columns])


Batches = Callable[[list[str]], Iterable[pl.DataFrame]]


class _HashStore:
    """Every row's (key hash, row hash), in memory or, past the budget, in two spill files
    read back in chunks (never mapped, so they never count in the process' RSS)."""

    CHUNK = 1 << 22

    def __init__(self, rows_hint: int, spill: bool) -> None:
        self.rows = 0
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        if spill:
            self._dir = tempfile.TemporaryDirectory(prefix="lockstep-diff-")
            self._files = [open(os.path.join(self._dir.name, n), "w+b") for n in ("kh", "rh")]  # noqa: SIM115
        else:
            self._kh = np.empty(rows_hint, dtype=np.uint64)
            self._rh = np.empty(rows_hint, dtype=np.uint64)

    def slot(self, n: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Where the next ``n`` rows' hashes may be written in place (None: anywhere)."""
        if self._dir is not None or self.rows + n > len(self._kh):
            return None
        return self._kh[self.rows : self.rows + n], self._rh[self.rows : self.rows + n]

    def append(self, kh: np.ndarray, rh: np.ndarray) -> None:
        n = len(kh)
        if self._dir is None and self.rows + n <= len(self._kh) and np.shares_memory(kh, self._kh):
            self.rows += n  # written in place through slot()
            return
        if self._dir is not None:
            self._files[0].write(kh.tobytes())
            self._files[1].write(rh.tobytes())
        else:
            if self.rows + n > len(self._kh):  # more rows than the metadata said: grow
                grow = max(self.rows + n, 2 * len(self._kh))
                self._kh = np.resize(self._kh, grow)
                self._rh = np.resize(self._rh, grow)
            self._kh[self.rows : self.rows + n] = kh
            self._rh[self.rows : self.rows + n] = rh
        self.rows += n

    def chunks(self) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """(first row, key hashes, row hashes) of consecutive chunks."""
        if self._dir is None:
            yield 0, self._kh[: self.rows], self._rh[: self.rows]
            return
        for f in self._files:
            f.flush()
        for start in range(0, self.rows, self.CHUNK):
            n = min(self.CHUNK, self.rows - start)
            kh = np.fromfile(self._files[0].name, dtype=np.uint64, count=n, offset=8 * start)
            rh = np.fromfile(self._files[1].name, dtype=np.uint64, count=n, offset=8 * start)
            yield start, kh, rh

    def close(self) -> None:
        if self._dir is not None:
            for f in self._files:
                f.close()
            self._dir.cleanup()
            self._dir = None


class StreamSide(Side):
    """A table read as a stream of batches and hashed batch by batch, so its memory
    is bounded by the budget, not the table.

    ``batches(columns)`` yields the table's rows in the same order on every call. Hashes
    stay in memory within ``hash_budget`` bytes (else they spill to a temporary folder);
    the batches themselves are kept only with ``keep_values`` - otherwise the rows a
    descent asks about (the mismatched leaves' rows, a few per differing key) are read
    again in one more pass, taking only those rows."""

    def __init__(self, batches: Batches, schema: pl.Schema, keys: list[str], columns: list[str], name: str = "",
                 *, rows_hint: int = 0, keep_values: bool = True, hash_budget: int = 1 << 30) -> None:
        missing = [c for c in [*keys, *columns] if c not in schema]
        if missing:
            raise ReconciliationError(f"{name or 'table'}: no column(s) {missing}")
        self.name = name
        self.keys = keys
        self.columns = [c for c in dict.fromkeys(columns) if c not in keys]
        self._batches = batches
        wanted = [*keys, *self.columns]
        self.frame = pl.DataFrame(schema={c: schema[c] for c in wanted})
        self._store = _HashStore(rows_hint, spill=16 * rows_hint > hash_budget)
        self._kept: list[pl.DataFrame] | None = [] if keep_values else None
        total = 0
        for batch in batches(wanted):
            if not batch.height:
                continue
            kh, rh = hashes(batch, keys, wanted, out=self._store.slot(batch.height))
            self._store.append(kh, rh)
            total = (total + int(rh.sum(dtype=np.uint64))) & (2**64 - 1)
            if self._kept is not None:
                self._kept.append(batch)
        self.rows = self._store.rows
        self.total = total
        self._leaf_bits = -1
        self._levels = {}
        self._cand = np.zeros(0, dtype=np.int64)
        self._cand_kh = self._cand_rh = np.zeros(0, dtype=np.uint64)
        self._cand_frame: pl.DataFrame | None = None

    def close(self) -> None:
        self._store.close()
        self._kept = None

    def set_depth(self, leaf_bits: int) -> None:
        if leaf_bits == self._leaf_bits:
            return
        self._leaf_bits = leaf_bits
        out = np.zeros(1 << leaf_bits, dtype=np.uint64)
        for _, kh, rh in self._store.chunks():
            leaf_sums(kh, rh, leaf_bits, out)
        self._levels = {leaf_bits: out}

    def leaf_rows(self, leaves: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        want = np.zeros(1 << self._leaf_bits, dtype=bool)
        want[leaves] = True
        pos, khs, rhs = [], [], []
        for start, kh, rh in self._store.chunks():
            idx = select_leaves(kh, want, self._leaf_bits)
            pos.append(idx + start)
            khs.append(kh[idx])
            rhs.append(rh[idx])
        self._cand = np.concatenate(pos) if pos else np.zeros(0, np.int64)
        self._cand_kh = np.concatenate(khs) if khs else np.zeros(0, np.uint64)
        self._cand_rh = np.concatenate(rhs) if rhs else np.zeros(0, np.uint64)
        self._cand_frame = None
        return self._cand_kh, self._cand_rh

    def _candidates(self) -> pl.DataFrame:
        """Every row of the mismatched leaves, in ``_cand`` order (one more pass over the
        table when its batches were not kept)."""
        if self._cand_frame is None:
            wanted = [*self.keys, *self.columns]
            order = np.argsort(self._cand, kind="stable")
            sorted_pos = self._cand[order]
            parts: list[pl.DataFrame] = []
            start = 0
            for batch in self._kept if self._kept is not None else self._batches(wanted):
                lo, hi = np.searchsorted(sorted_pos, [start, start + batch.height])
                if hi > lo:
                    parts.append(batch.select(wanted)[sorted_pos[lo:hi] - start])
                start += batch.height
            if parts:
                self._cand_frame = pl.concat(parts)[np.argsort(order, kind="stable")]
            else:
                self._cand_frame = self.frame.clear()
        return self._cand_frame

    def _local(self, key_hashes: np.ndarray) -> np.ndarray:
        order = np.argsort(self._cand_kh, kind="stable")
        return order[np.searchsorted(self._cand_kh[order], key_hashes)]

    def key_values(self, key_hashes: np.ndarray) -> pl.DataFrame:
        return self._candidates()[self._local(key_hashes)].select(self.keys)

    def column_hashes(self, key_hashes: np.ndarray) -> dict[str, np.ndarray]:
        sub = self._candidates()[self._local(key_hashes)]
        return {c: column_hash(sub[c]) for c in self.columns}

    def values(self, key_hashes: np.ndarray) -> pl.DataFrame | None:
        return self._candidates()[self._local(key_hashes)].select([*self.keys, *self.columns])


class EvidenceSide(Side):
    """A side answered from a published profile's keyed digest (key values, key hash, row
    hash and per-column hashes of every row): no access to the region's table, and no
    column value to show."""

    def __init__(self, keyed: pl.DataFrame, keys: list[str], columns: list[str], name: str = "") -> None:
        missing = [c for c in [*keys, "_kh", "_rh", *[f"_c_{c}" for c in columns]] if c not in keyed.columns]
        if missing:
            raise ReconciliationError(f"{name or 'profile'}: keyed digest lacks {missing}")
        self.name = name
        self.keys = keys
        self.columns = [c for c in dict.fromkeys(columns) if c not in keys]
        self.frame = keyed
        self.kh = keyed["_kh"].to_numpy().astype(np.uint64)
        self.rh = keyed["_rh"].to_numpy().astype(np.uint64)
        self.rows = keyed.height
        self.total = int(self.rh.sum(dtype=np.uint64)) if self.rows else 0
        self._leaf_bits = -1
        self._levels = {}
        self._cand = np.zeros(0, dtype=np.int64)

    def column_hashes(self, key_hashes: np.ndarray) -> dict[str, np.ndarray]:
        sub = self.frame[self._rows_for(key_hashes)]
        return {c: sub[f"_c_{c}"].to_numpy().astype(np.uint64) for c in self.columns}

    def values(self, key_hashes: np.ndarray) -> pl.DataFrame | None:
        return None


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


def compare(a: Side, b: Side, *, buckets: int = 256, strict: bool = False, samples: int = SAMPLES) -> ParityReport:
    """Compare two sides by key, moving data in proportion to their difference."""
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
        return ParityReport(a.rows, rows_b, True, _empty_keys(a), _empty_keys(b), no_change, {}, traffic)

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
    return ParityReport(
        a.rows, rows_b, False, keys_a, keys_b, changed_frame, changed_columns, traffic,
        buckets_compared=compared, buckets_mismatched=int(len(mism)), samples=sample_rows,
    )


# --------------------------------------------------------------------------- the spec's check
def _side(ctx: Any, region: str, table: Any, profile: Any, keys: list[str]) -> Side:
    """The region's side of a descent: its profile's keyed digest; for a table too large to
    carry one, the region-local step (the region hashes its own version of the table and
    answers with keys and hashes; values only where residency allows)."""
    digest = profile.digest
    keyed = profile.keyed
    if keyed is not None:
        return EvidenceSide(keyed, keys, digest["columns"], name=region)
    from pipelines.storage import read_table

    frame = read_table(ctx.spec.table_uri(region, table.layer, table.name, ctx.root), version=profile.version,
                       partition=ctx.interval.partition(table.partition_by),
                       storage_options=ctx.spec.region_options(region)).collect()
    return Side(frame.drop([c for c in table.partition_by if c in frame.columns]), keys, digest["columns"], name=region)


def check_parity(ctx: Any, check: Any) -> list[Any]:
    """Parity of a replicated table across every region of the generation, from profiles.

    Regions are grouped by their whole-table digest (rows, sum of row hashes: 16 bytes each);
    the largest group (ties: the one holding the first region of the spec) is the consensus,
    and each region outside it is compared with a consensus region by key, descending the
    digest tree over the profiles' keyed digests. One result per region."""
    from pipelines.control.results import CheckResult

    spec = ctx.spec
    table = spec.table(check.table)
    check_id = f"parity.{table.name}"
    results: list[CheckResult] = []
    digests: dict[str, Any] = {}
    for region in spec.regions:
        p = ctx.profile(region, table)
        base0: dict[str, Any] = dict(stage="reconcile", check_id=check_id, check_type="parity", region=region,
                                     table=table.name, policy=check.policy)
        if p is None:
            results.append(CheckResult(**base0, success=False, observed="missing", threshold="present",
                                       message=f"{region} holds no {table.path} in this generation"))
            continue
        if p.digest is None:
            results.append(CheckResult(**base0, success=False, observed="no digest", threshold="digest",
                                       table_version=p.version,
                                       message=f"{region}/{table.path}: no digest in its profile at version {p.version}"))
            continue
        digests[region] = p
    if not digests:
        return results
    groups: dict[tuple[int, int, tuple[str, ...]], list[str]] = {}
    for region, p in digests.items():
        d = p.digest
        groups.setdefault((int(d["rows"]), int(d["total"]), tuple(sorted(d["columns"]))), []).append(region)
    consensus = max(groups.values(), key=lambda rs: (len(rs), -spec.regions.index(rs[0])))
    ref = consensus[0]
    ref_cols = sorted(digests[ref].digest["columns"])
    for region, p in digests.items():
        d = p.digest
        base: dict[str, Any] = dict(stage="reconcile", check_id=check_id, check_type="parity", region=region,
                                    table=table.name, policy=check.policy, table_version=p.version)
        if region in consensus:
            results.append(CheckResult(
                **base, success=True, observed=0, threshold=0, unexpected_count=0, element_count=int(d["rows"]),
                message=f"in sync with {len(consensus) - 1} other region(s) (whole-table digest)",
                details={"reference": ref, "bytes_moved": 16, "rows": int(d["rows"]), "residency": check.residency}))
            continue
        if sorted(d["columns"]) != ref_cols:
            results.append(CheckResult(
                **base, success=False, observed=sorted(d["columns"]), threshold=ref_cols,
                message=f"{region} has columns {sorted(d['columns'])}, consensus ({ref}) has {ref_cols}"))
            continue
        a = _side(ctx, ref, table, digests[ref], check.keys)
        b = _side(ctx, region, table, p, check.keys)
        b.columns = list(a.columns)
        report = compare(a, b, buckets=check.buckets, strict=check.residency == "strict")
        s = report.summary(limit=1000)
        differing = report.differing
        cols = ", ".join(f"{c} ({n})" for c, n in sorted(report.changed_columns.items()))
        parts = []
        if report.changed.height:
            parts.append(f"{report.changed.height} key(s) differ in {cols}")
        if report.only_in_b.height:
            parts.append(f"{report.only_in_b.height} key(s) only in {region}")
        if report.only_in_a.height:
            parts.append(f"{report.only_in_a.height} key(s) missing from {region}")
        sample = s["samples"]["changed"][:10] or s["samples"]["only_in_b"][:10] or s["samples"]["only_in_a"][:10]
        results.append(CheckResult(
            **base, success=False, observed=differing, threshold=0, unexpected_count=differing,
            element_count=int(d["rows"]),
            message=f"{region} differs from {ref} (consensus of {len(consensus)}): " + "; ".join(parts)
            + f"; keys {sample}",
            details={
                "reference": ref, "keys": check.keys, "residency": check.residency,
                "changed_keys": s["samples"]["changed"], "only_in_region": s["samples"]["only_in_b"],
                "missing_in_region": s["samples"]["only_in_a"], "changed_columns": report.changed_columns,
                "counts": {"changed": report.changed.height, "only_in_region": report.only_in_b.height,
                           "missing_in_region": report.only_in_a.height},
                "samples": report.samples, "bytes_moved": report.traffic.total, "rounds": report.traffic.rounds,
                "buckets_compared": report.buckets_compared, "rows": int(d["rows"]),
                "reference_rows": report.rows_a, "from_evidence": isinstance(b, EvidenceSide),
            }))
    return results
