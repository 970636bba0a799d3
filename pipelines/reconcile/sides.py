"""The sides of a digest-tree descent: one table where its data lives, answering the coordinator.

A :class:`Side` hashes a frame in memory; a :class:`StreamSide` hashes a table batch by
batch (memory bounded by a budget, hashes spilled to disk past it); an :class:`EvidenceSide`
answers from a published profile's keyed digest, without the region's table and without any
column value. Everything a side returns is what would cross the network between regions;
:func:`pipelines.reconcile.descent.compare` asks the questions and counts the bytes.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import polars as pl

from pipelines.errors import ReconciliationError
from pipelines.evidence.digest import leaf_sums, select_leaves
from pipelines.evidence.hashing import column_hash, hashes


def compared_columns(available: Iterable[str], keys: list[str], columns: list[str], name: str) -> list[str]:
    """The value columns a side compares (each once, keys apart); a key or column the table
    does not have is a :class:`ReconciliationError` naming them."""
    have = set(available)
    missing = [c for c in [*keys, *columns] if c not in have]
    if missing:
        raise ReconciliationError(f"{name or 'table'}: no column(s) {missing}")
    return [c for c in dict.fromkeys(columns) if c not in keys]


class Side:
    """One table where its data lives: hashes its rows and answers the coordinator.

    Everything a :class:`Side` returns is what would cross the network between regions.
    """

    def __init__(self, frame: pl.DataFrame, keys: list[str], columns: list[str], name: str = "") -> None:
        self.name, self.keys, self.columns = name, keys, compared_columns(frame.columns, keys, columns, name)
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
        self.name, self.keys, self.columns = name, keys, compared_columns(schema, keys, columns, name)
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
