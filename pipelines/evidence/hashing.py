"""A stable row hash and the canonical encoding of values it hashes.

Digests are compared across regions, machines and library versions, so Lockstep does not
use polars' built-in hash (its value is not guaranteed across releases). This module
defines **lockstep-rowhash-1**, implemented with numpy on 64-bit words, so the same values
give the same hash on any machine, process and polars release.

Definition (all arithmetic modulo 2**64)::

    mix(z)      = z ^= z >> 30; z *= 0xBF58476D1CE4E5B9; z ^= z >> 27;
                  z *= 0x94D049BB133111EB; z ^= z >> 31          # splitmix64's finaliser
    bytes(b, s) = h = mix(s ^ len(b)); for each 8-byte little-endian word w of b
                  (the last zero-padded): h = mix(h ^ w); return h
    name(c)     = bytes(utf8(c), TAG_NAME)

    value hash of column c, value v (the *column hash*, what strict residency exchanges):
      null                      mix(TAG_NULL ^ name(c))
      string / categorical      bytes(utf8(v), TAG_STR ^ name(c))
      binary                    bytes(v, TAG_BIN ^ name(c))
      anything else             mix(word(v) ^ TAG_<family> ^ name(c))

    key hash = mix(KEY_SEED + sum of the column hashes of the key columns)
    row hash = mix(ROW_SEED + sum of the column hashes of the key and compared columns)

Canonical words per family (``word(v)``):

* **INT** - every signed and unsigned integer type and Boolean (0/1): the value as a
  64-bit two's complement word, so Int32 5 and Int64 5 hash alike (types are the schema
  check's business, not the digest's).
* **FLOAT** - Float32 is widened exactly to Float64; -0.0 becomes +0.0 and every NaN
  becomes 0x7FF8000000000000; the word is the IEEE-754 bit pattern.
* **DATETIME** - the instant in microseconds since 1970-01-01 UTC, whatever the unit
  (nanoseconds are floored) and time zone; a naive datetime is taken as UTC. So
  ``2026-01-01 01:00+01:00`` and ``2026-01-01 00:00Z`` hash alike.
* **DATE** - days since 1970-01-01. **TIME** - nanoseconds since midnight.
  **DURATION** - nanoseconds.
* Strings are hashed as their UTF-8 bytes, without Unicode normalisation.

Column order never matters (columns enter by name, through a sum), and a column's hash is
a bijection of its word, so two different values of one fixed-width column never collide.
Decimal, list, struct and object columns are refused with a clear error.
:data:`TEST_VECTOR` pins the definition; ``tests/reconcile/test_hashing.py`` checks it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from pipelines.errors import ReconciliationError

HASH_VERSION = "lockstep-rowhash-1"

M1 = np.uint64(0xBF58476D1CE4E5B9)
M2 = np.uint64(0x94D049BB133111EB)
TAG_NAME = 0x6C6F636B73746570  # "lockstep"
TAG_NULL = 0x9E3779B97F4A7C15
TAG_INT = 0xA0761D6478BD642F
TAG_FLOAT = 0xE7037ED1A0B428DB
TAG_STR = 0x8EBC6AF09C88C6E3
TAG_BIN = 0x589965CC75374CC3
TAG_DATETIME = 0x1D8E4E27C47D124F
TAG_DATE = 0xD6E8FEB86659FD93
TAG_TIME = 0xA5A5A5A55A5A5A5A
TAG_DURATION = 0x2D358DCCAA6C78A5
KEY_SEED = 0x4B45595F48415348  # "KEY_HASH"
ROW_SEED = 0x524F575F48415348  # "ROW_HASH"
CANONICAL_NAN = 0x7FF8000000000000

_SHIFTS = (np.uint64(30), np.uint64(27), np.uint64(31))


def mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on a uint64 array (a bijection; returns a new array)."""
    z = z ^ (z >> _SHIFTS[0])
    z *= M1
    z ^= z >> _SHIFTS[1]
    z *= M2
    z ^= z >> _SHIFTS[2]
    return z


def mix_int(x: int) -> int:
    """``mix`` of one Python int (for seeds and tests)."""
    return int(mix(np.array([x & (2**64 - 1)], dtype=np.uint64))[0])


def _bytes_hash(offsets: np.ndarray, data: np.ndarray, seed: np.ndarray | int) -> np.ndarray:
    """``bytes(b, seed)`` for every string of an Arrow-style (offsets, data) pair."""
    n = len(offsets) - 1
    starts = offsets[:-1].astype(np.int64)
    lengths = (offsets[1:] - offsets[:-1]).astype(np.int64)
    with np.errstate(over="ignore"):
        h = mix(np.asarray(seed, dtype=np.uint64) ^ lengths.astype(np.uint64))
    if n == 0 or not lengths.any():
        return h if h.shape == (n,) else np.broadcast_to(h, (n,)).copy()
    h = np.broadcast_to(h, (n,)).copy()
    padded = np.zeros(len(data) + 8, dtype=np.uint8)
    padded[: len(data)] = data
    # an unaligned little-endian uint64 view starting at every byte offset
    words = np.ndarray(shape=(len(padded) - 7,), dtype="<u8", buffer=padded, strides=(1,))
    nwords = (lengths + 7) // 8
    active: np.ndarray | None = None  # None: every row (slices beat fancy indexing)
    all_ones = np.uint64(2**64 - 1)
    for j in range(int(nwords.max())):
        if active is None and (nwords <= j).any():
            active = np.flatnonzero(nwords > j)
        elif active is not None:
            active = active[nwords[active] > j]
        st = starts if active is None else starts[active]
        rem = np.minimum((lengths if active is None else lengths[active]) - 8 * j, 8).astype(np.uint64)
        w = words[st + 8 * j]
        w &= all_ones >> ((np.uint64(8) - rem) * np.uint64(8))  # keep the string's own bytes
        if active is None:
            h = mix(h ^ w)
        else:
            h[active] = mix(h[active] ^ w)
    return h


def bytes_hash(value: bytes, seed: int) -> int:
    """``bytes(value, seed)`` of one byte string."""
    data = np.frombuffer(value, dtype=np.uint8)
    return int(_bytes_hash(np.array([0, len(value)], dtype=np.int64), data, seed)[0])


def name_hash(column: str) -> int:
    return bytes_hash(column.encode(), TAG_NAME)


def _string_hash(s: pl.Series, seed: int) -> np.ndarray:
    arr = s.to_arrow()
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_string(arr.type) or pa.types.is_string_view(arr.type):
        arr = arr.cast(pa.large_string())
    elif pa.types.is_binary(arr.type) or pa.types.is_binary_view(arr.type):
        arr = arr.cast(pa.large_binary())
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int64)[arr.offset : arr.offset + len(arr) + 1]
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(0, np.uint8)
    return _bytes_hash(offsets, data, seed)


def _word(s: pl.Series) -> tuple[np.ndarray, int]:
    """(canonical 64-bit words, family tag) of a fixed-width column (nulls: any word)."""
    dt = s.dtype
    if dt == pl.Boolean or dt.is_integer():
        if dt == pl.UInt64:
            return s.fill_null(0).to_numpy().astype(np.uint64), TAG_INT
        return s.cast(pl.Int64).fill_null(0).to_numpy().view(np.uint64), TAG_INT
    if dt.is_float():
        x = s.cast(pl.Float64).fill_null(0.0).to_numpy().astype(np.float64, copy=True)
        x[x == 0.0] = 0.0  # -0.0 -> +0.0
        bits = x.view(np.uint64)
        bits[np.isnan(x)] = np.uint64(CANONICAL_NAN)
        return bits, TAG_FLOAT
    if isinstance(dt, pl.Datetime):
        phys = s.to_physical().cast(pl.Int64)
        if dt.time_unit == "ns":
            phys = phys // 1000  # floor division: -1 ns is -1 us, not 0
        elif dt.time_unit == "ms":
            phys = phys * 1000
        return phys.fill_null(0).to_numpy().view(np.uint64), TAG_DATETIME
    if dt == pl.Date:
        return s.to_physical().cast(pl.Int64).fill_null(0).to_numpy().view(np.uint64), TAG_DATE
    if dt == pl.Time:
        return s.to_physical().cast(pl.Int64).fill_null(0).to_numpy().view(np.uint64), TAG_TIME
    if isinstance(dt, pl.Duration):
        ns = s.dt.cast_time_unit("ns").to_physical()
        return ns.cast(pl.Int64).fill_null(0).to_numpy().view(np.uint64), TAG_DURATION
    raise ReconciliationError(
        f"column {s.name!r}: type {dt} is not supported by the stable row hash "
        f"({HASH_VERSION}); cast it to a string or a number, or leave it out of the comparison"
    )


def _np_column_hash(s: pl.Series, name: str | None = None) -> np.ndarray:
    """numpy implementation of :func:`column_hash` (used when numba is not installed)."""
    name = s.name if name is None else name
    nh = name_hash(name)
    dt = s.dtype
    if dt in (pl.String, pl.Categorical) or isinstance(dt, pl.Enum | pl.Categorical):
        h = _string_hash(s.cast(pl.String), TAG_STR ^ nh)
    elif dt == pl.Binary:
        h = _string_hash(s, TAG_BIN ^ nh)
    elif dt == pl.Null:
        h = np.zeros(len(s), dtype=np.uint64)
    else:
        words, tag = _word(s)
        h = mix(words ^ np.uint64(tag ^ nh))
    if s.null_count():
        h[s.is_null().to_numpy()] = np.uint64(mix_int(TAG_NULL ^ nh))
    return h


def combine(hashes: Iterable[np.ndarray], seed: int, n: int) -> np.ndarray:
    """``mix(seed + sum of hashes)``: the order-free combination of column hashes."""
    acc = np.full(n, seed, dtype=np.uint64)
    for h in hashes:
        acc += h
    return mix(acc)


# --------------------------------------------------------------------------- compiled path
# Each column becomes "pieces": one per Arrow chunk, each a kernel of
# :mod:`pipelines.evidence._kernels` with the chunk's buffers (zero copy). Rows are hashed in
# blocks on a thread pool; a block runs every column's kernel over its rows, so the
# accumulators stay in cache and every value is read once.
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


def _unsupported(name: str, dtype: object) -> ReconciliationError:
    return ReconciliationError(
        f"column {name!r}: type {dtype} is not supported by the stable row hash "
        f"({HASH_VERSION}); cast it to a string or a number, or leave it out of the comparison"
    )


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
        raise _unsupported(name, t)
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
    raise _unsupported(name, t)


def _check_polars_type(s: pl.Series) -> None:
    dt = s.dtype
    ok = (dt in (pl.String, pl.Binary, pl.Boolean, pl.Date, pl.Time, pl.Null) or dt.is_integer() or dt.is_float()
          or isinstance(dt, pl.Datetime | pl.Duration | pl.Categorical | pl.Enum))
    if not ok:
        raise _unsupported(s.name, dt)


def _series_pieces(k: Any, s: pl.Series, name: str) -> list[_Piece]:
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


def column_hash(s: pl.Series, name: str | None = None) -> np.ndarray:
    """The column hash of every value of ``s`` (named ``name``, default the series' name)."""
    name = s.name if name is None else name
    k = kernels(s.len())
    if k is None:
        return _np_column_hash(s, name)
    return run_pieces(s.len(), [(_series_pieces(k, s, name), False)], None)[1]


def warm_up() -> None:
    """Load every compiled kernel once (from numba's on-disk cache; compiled on the very first
    use): a process pays this once, about 0.1-0.3 s a kernel, before its first hash."""
    if kernels() is None:
        return
    df = _vector_frame()
    kh, rh = hashes(df, ["id"], df.columns)
    table = df.to_arrow()
    table = table.set_column(table.schema.get_field_index("s"), "s", table.column("s").cast(pa.string()))
    arrow_hashes(table, ["id"], table.column_names)
    select_leaves(kh, leaf_sums(kh, rh, 4) > 0, 4)


def key_hash(df: pl.DataFrame, keys: list[str]) -> np.ndarray:
    return hashes(df, keys, keys)[0]


def row_hash(df: pl.DataFrame, columns: list[str]) -> np.ndarray:
    """The row hash over ``columns`` (pass the keys too; order does not matter)."""
    return hashes(df, [], columns)[1]


def column_hashes(df: pl.DataFrame, columns: list[str]) -> list[np.ndarray]:
    """Column hashes of several columns."""
    return [column_hash(df[c]) for c in columns]


def hashes(df: pl.DataFrame, keys: list[str], columns: list[str],
           out: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(key hash, row hash) of every row, sharing the key columns' hashes; ``out``: two
    uint64 arrays of the frame's length to write them into.

    Compiled: one pass over each column's buffers, rows in blocks on a thread pool."""
    cols = [c for c in dict.fromkeys(columns) if c not in keys]
    k = kernels(df.height)
    if k is None:
        all_h = [_np_column_hash(df[c]) for c in [*keys, *cols]]
        kh, rh = combine(all_h[: len(keys)], KEY_SEED, df.height), combine(all_h, ROW_SEED, df.height)
        if out is None:
            return kh, rh
        out[0][:], out[1][:] = kh, rh
        return out
    plan = [(_series_pieces(k, df[c], c), True) for c in keys] + [(_series_pieces(k, df[c], c), False) for c in cols]
    return run_pieces(df.height, plan, (KEY_SEED, ROW_SEED), out)


def arrow_hashes(table: pa.Table | pa.RecordBatch, keys: list[str], columns: list[str],
                 out: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`hashes` of an Arrow table or batch (the streaming diff reads Arrow directly);
    ``out``: two uint64 arrays of the table's length to write (key hash, row hash) into."""
    cols = [c for c in dict.fromkeys(columns) if c not in keys]
    if kernels(table.num_rows) is None:
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        kh, rh = hashes(frame, keys, columns)
        if out is not None:
            out[0][:], out[1][:] = kh, rh
            return out
        return kh, rh
    plan = [(arrow_pieces(table.column(c), c), True) for c in keys]
    plan += [(arrow_pieces(table.column(c), c), False) for c in cols]
    return run_pieces(table.num_rows, plan, (KEY_SEED, ROW_SEED), out)


# --------------------------------------------------------------------------- digest tree
def group_sum(ids: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Per-group sums of uint64 ``values`` modulo 2**64, exactly, via float bincounts of limbs."""
    # float64 sums of b-bit limbs are exact while a group holds < 2**(53 - b) rows
    limb_bits = 32 if len(values) < 2**21 or int(np.bincount(ids, minlength=n).max()) < 2**21 else 16
    mask = np.uint64((1 << limb_bits) - 1)
    out = np.zeros(n, dtype=np.uint64)
    for i in range(64 // limb_bits):
        limb = ((values >> np.uint64(i * limb_bits)) & mask).astype(np.float64)
        s = np.bincount(ids, weights=limb, minlength=n).astype(np.uint64)
        out += s << np.uint64(i * limb_bits)
    return out

def leaf_sums(kh: np.ndarray, rh: np.ndarray, bits: int, out: np.ndarray | None = None) -> np.ndarray:
    """Bucket digests of the level with ``2**bits`` buckets (rows placed by the top ``bits``
    of their key hash), added into ``out`` when given (so chunks of a table add up)."""
    out = np.zeros(1 << bits, dtype=np.uint64) if out is None else out
    k = kernels(len(kh))
    if not len(kh):
        return out
    if not bits:
        out[0] += rh.sum(dtype=np.uint64)
    elif k is not None:
        k.bucket_sums(kh, rh, 64 - bits, out)
    else:
        out += level_sums(kh, rh, bits)
    return out


def select_leaves(kh: np.ndarray, want: np.ndarray, bits: int) -> np.ndarray:
    """Indices of the rows whose bucket at ``bits`` is marked in the boolean ``want``."""
    k = kernels(len(kh))
    if not bits:
        return np.arange(len(kh), dtype=np.int64) if want[0] else np.zeros(0, np.int64)
    if k is not None:
        return np.asarray(k.select_leaves(kh, want, 64 - bits))
    return np.flatnonzero(want[(kh >> np.uint64(64 - bits)).astype(np.int64)])


def first_level_bits(buckets: int) -> int:
    """Bits of the digest tree's first level for a spec's ``buckets``."""
    return max(0, math.ceil(math.log2(max(1, buckets))))

def level_sums(kh: np.ndarray, rh: np.ndarray, bits: int) -> np.ndarray:
    """Bucket digests of one level: rows placed by the top ``bits`` of their key hash."""
    ids = (kh >> np.uint64(64 - bits)).astype(np.int64) if bits else np.zeros(len(kh), np.int64)
    return group_sum(ids, rh, 1 << bits)



def _vector_frame() -> pl.DataFrame:
    from datetime import UTC, date, datetime, timedelta, timezone

    return pl.DataFrame(
        {
            "id": pl.Series([1, -2, None], dtype=pl.Int64),
            "x": pl.Series([0.5, -0.0, float("nan")], dtype=pl.Float64),
            "s": pl.Series(["", "héllo wörld, longer than 8", None], dtype=pl.String),
            "t": pl.Series(
                [datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 1, tzinfo=timezone(timedelta(hours=1))), None],
                dtype=pl.Datetime("us", "UTC"),
            ),
            "d": pl.Series([date(2026, 1, 1), None, date(1969, 12, 31)], dtype=pl.Date),
            "b": pl.Series([True, False, None], dtype=pl.Boolean),
        }
    )


#: Row hashes (hex) of :func:`_vector_frame`'s rows over all its columns, keyed by ``id``.
#: If this changes, digests no longer match across versions: bump HASH_VERSION instead.
TEST_VECTOR = {
    "row": ["0x5c43f63318a3ec82", "0xf4f1b906b42532a1", "0xf7342b62fc28e1d2"],
    "key": ["0xe51ae5a326212c59", "0x5d3f591088f09d6a", "0xabe49d50ec4cc589"],
}
