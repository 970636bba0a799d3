"""lockstep-rowhash-1: the stable row hash, the canonical encoding of the values it hashes, and its reference.

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

This module holds the definition and its reference implementation in numpy
(:func:`numpy_column_hash`, :func:`combine`); :data:`TEST_VECTOR` pins it and
``tests/reconcile/test_hashing.py`` checks it. The compiled path
(:mod:`pipelines.evidence.compiled`) gives the same hashes faster; :mod:`pipelines.evidence.hashing`
chooses between them.
"""

from __future__ import annotations

from collections.abc import Iterable

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


def unsupported(name: str, dtype: object) -> ReconciliationError:
    return ReconciliationError(
        f"column {name!r}: type {dtype} is not supported by the stable row hash "
        f"({HASH_VERSION}); cast it to a string or a number, or leave it out of the comparison"
    )


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


def numpy_column_hash(s: pl.Series, name: str | None = None) -> np.ndarray:
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


def vector_frame() -> pl.DataFrame:
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


#: Row hashes (hex) of :func:`vector_frame`'s rows over all its columns, keyed by ``id``.
#: If this changes, digests no longer match across versions: bump HASH_VERSION instead.
TEST_VECTOR = {
    "row": ["0x5c43f63318a3ec82", "0xf4f1b906b42532a1", "0xf7342b62fc28e1d2"],
    "key": ["0xe51ae5a326212c59", "0x5d3f591088f09d6a", "0xabe49d50ec4cc589"],
}
