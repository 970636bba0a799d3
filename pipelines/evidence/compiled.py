"""The compiled path of lockstep-rowhash-1: columns as kernel calls over their Arrow buffers.

Each column becomes "pieces": one per Arrow chunk, each a kernel of
:mod:`pipelines.evidence._kernels` (numba) with the chunk's buffers (zero copy). Rows are
hashed in blocks on a thread pool; a block runs every column's kernel over its rows, so the
accumulators stay in cache and every value is read once. Without numba (or for few rows)
:func:`kernels` is None and :mod:`pipelines.evidence.hashing` takes the numpy reference
(:mod:`pipelines.evidence.rowhash`), which gives the same hashes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from pipelines.evidence.rowhash import (
    TAG_BIN,
    TAG_DATE,
    TAG_DATETIME,
    TAG_DURATION,
    TAG_FLOAT,
    TAG_INT,
    TAG_NULL,
    TAG_STR,
    TAG_TIME,
    mix_int,
    name_hash,
    unsupported,
)

BLOCK_ROWS = 1 << 16
_MISSING = object()
_KERNELS: Any = _MISSING

#: Below this many rows the numpy implementation runs: a process' first use of the compiled
#: kernels costs about a second (numba loads them from its cache), more than numpy spends.
KERNEL_MIN_ROWS = 1 << 18


def kernels(rows: int | None = None) -> Any:
    """The compiled kernels module, or None when numba is not installed or ``rows`` is small
    (numpy fallback)."""
    global _KERNELS
    if rows is not None and rows < KERNEL_MIN_ROWS and _KERNELS is _MISSING:
        return None
    if _KERNELS is _MISSING:
        try:
            from pipelines.evidence import _kernels
        except ImportError:  # numba absent: the numpy implementation gives the same hashes
            _KERNELS = None
        else:
            _KERNELS = _kernels
    return _KERNELS


_NO_BITS = np.zeros(1, dtype=np.uint8)
_TIME_NS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}


@dataclass
class _Piece:
    start: int  # first row of this piece in the frame
    length: int
    fn: Any
    bufs: tuple[np.ndarray, ...]
    off: int
    tail: tuple[Any, ...]

    def run(self, k: Any, acc_r: np.ndarray, acc_k: np.ndarray, key: bool, lo: int, hi: int) -> None:
        a, b = max(lo, self.start), min(hi, self.start + self.length)
        if a < b:
            self.fn(acc_r, acc_k, key, self.start, *self.bufs, self.off, a - self.start, b - self.start, *self.tail)


def _arrow_pieces(k: Any, arr: pa.Array, start: int, name: str, nh: int) -> list[_Piece]:
    """The kernel call hashing one Arrow array (rows ``start`` .. of the frame)."""
    t = arr.type
    if pa.types.is_dictionary(t):
        arr, t = arr.dictionary_decode(), t.value_type
    if pa.types.is_string_view(t) or pa.types.is_binary_view(t):
        t = pa.large_string() if pa.types.is_string_view(t) else pa.large_binary()
        arr = arr.cast(t)
    if pa.types.is_float16(t) or pa.types.is_float32(t):
        arr, t = arr.cast(pa.float64()), pa.float64()
    n = len(arr)
    null_h = np.uint64(mix_int(TAG_NULL ^ nh))
    if pa.types.is_null(t):
        return [_Piece(start, n, k.ints, (np.zeros(1, np.int64),), 0,
                       (np.uint64(0), null_h, np.zeros((n + 7) // 8 or 1, np.uint8), True))]
    bufs = arr.buffers()
    has_nulls = arr.null_count > 0
    bitmap = np.frombuffer(bufs[0], dtype=np.uint8) if has_nulls and bufs[0] is not None else _NO_BITS
    if has_nulls and bufs[0] is None:  # nulls without a bitmap cannot happen for these types
        raise unsupported(name, t)
    off = arr.offset

    def piece(fn: Any, vals: tuple[np.ndarray, ...], tag: int, *extra: int) -> list[_Piece]:
        return [_Piece(start, n, fn, vals, off, (np.uint64(tag ^ nh), null_h, bitmap, has_nulls, *extra))]

    if pa.types.is_string(t) or pa.types.is_binary(t) or pa.types.is_large_string(t) or pa.types.is_large_binary(t):
        odt = np.int64 if (pa.types.is_large_string(t) or pa.types.is_large_binary(t)) else np.int32
        offsets = np.frombuffer(bufs[1], dtype=odt)
        data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None and bufs[2].size else np.zeros(1, np.uint8)
        tag = TAG_STR if (pa.types.is_string(t) or pa.types.is_large_string(t)) else TAG_BIN
        return piece(k.strings, (offsets, data), tag)
    if pa.types.is_boolean(t):
        return piece(k.bools, (np.frombuffer(bufs[1], dtype=np.uint8),), TAG_INT)
    if pa.types.is_integer(t):
        vals = np.frombuffer(bufs[1], dtype=t.to_pandas_dtype())
        return piece(k.uints if pa.types.is_uint64(t) else k.ints, (vals,), TAG_INT)
    if pa.types.is_float64(t):
        return piece(k.floats, (np.frombuffer(bufs[1], dtype=np.uint64),), TAG_FLOAT)
    if pa.types.is_timestamp(t):
        mul, div = {"s": (1_000_000, 1), "ms": (1000, 1), "us": (1, 1), "ns": (1, 1000)}[t.unit]
        return piece(k.scaled, (np.frombuffer(bufs[1], dtype=np.int64),), TAG_DATETIME, mul, div)
    if pa.types.is_date32(t):
        return piece(k.scaled, (np.frombuffer(bufs[1], dtype=np.int32),), TAG_DATE, 1, 1)
    if pa.types.is_date64(t):
        return piece(k.scaled, (np.frombuffer(bufs[1], dtype=np.int64),), TAG_DATE, 1, 86_400_000)
    if pa.types.is_time32(t) or pa.types.is_time64(t):
        dt = np.int32 if pa.types.is_time32(t) else np.int64
        return piece(k.scaled, (np.frombuffer(bufs[1], dtype=dt),), TAG_TIME, _TIME_NS[t.unit], 1)
    if pa.types.is_duration(t):
        return piece(k.scaled, (np.frombuffer(bufs[1], dtype=np.int64),), TAG_DURATION, _TIME_NS[t.unit], 1)
    raise unsupported(name, t)


def _check_polars_type(s: pl.Series) -> None:
    dt = s.dtype
    ok = (dt in (pl.String, pl.Binary, pl.Boolean, pl.Date, pl.Time, pl.Null) or dt.is_integer() or dt.is_float()
          or isinstance(dt, pl.Datetime | pl.Duration | pl.Categorical | pl.Enum))
    if not ok:
        raise unsupported(s.name, dt)


def series_pieces(k: Any, s: pl.Series, name: str) -> list[_Piece]:
    """A polars column as pieces, one per chunk (zero copy where polars allows)."""
    _check_polars_type(s)
    if isinstance(s.dtype, pl.Categorical | pl.Enum):
        s = s.cast(pl.String)
    nh = name_hash(name)
    out: list[_Piece] = []
    start = 0
    for length in s.chunk_lengths() if s.n_chunks() > 1 else [s.len()]:
        out += _arrow_pieces(k, s.slice(start, length).to_arrow(), start, name, nh)
        start += length
    return out


def arrow_pieces(column: pa.Array | pa.ChunkedArray, name: str) -> list[_Piece]:
    """An Arrow column as pieces (for readers that never build a polars frame)."""
    k = kernels()
    nh = name_hash(name)
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    out: list[_Piece] = []
    start = 0
    for c in chunks:
        out += _arrow_pieces(k, c, start, name, nh)
        start += len(c)
    return out


def _pool_workers(n: int) -> int:
    import os

    return 1 if n < 4 * BLOCK_ROWS else min(os.cpu_count() or 1, 8)


def run_pieces(n: int, columns: list[tuple[list[_Piece], bool]], seeds: tuple[int, int] | None,
               out: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(key acc, row acc) of ``n`` rows: each column's hashes added in (``True``: a key
    column, added to both); with ``seeds``, started from (key seed, row seed) and mixed.
    ``out``: two uint64 arrays of ``n`` to write into."""
    k = kernels()
    if out is None:
        acc_k, acc_r = np.empty(n, dtype=np.uint64), np.empty(n, dtype=np.uint64)
    else:
        acc_k, acc_r = out
    acc_k.fill(seeds[0] if seeds else 0)
    acc_r.fill(seeds[1] if seeds else 0)

    def block(lo: int) -> None:
        hi = min(n, lo + BLOCK_ROWS)
        for pieces, key in columns:
            for p in pieces:
                p.run(k, acc_r, acc_k, key, lo, hi)
        if seeds:
            k.finish(acc_k, lo, hi)
            k.finish(acc_r, lo, hi)

    starts = range(0, n, BLOCK_ROWS)
    workers = _pool_workers(n)
    if workers == 1:
        for lo in starts:
            block(lo)
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(block, starts))
    return acc_k, acc_r
