"""Compiled kernels of ``lockstep-rowhash-1`` (numba): one pass over each column's Arrow
buffers per block of rows, adding the column hash into the key and row accumulators.

Imported lazily by :mod:`pipelines.evidence.compiled`; the definition and the numpy
reference used when numba is not installed are in :mod:`pipelines.evidence.rowhash`. Every kernel releases the GIL
(``nogil``), so blocks of rows hash on a thread pool; compiled code is cached on disk.
"""

from __future__ import annotations

import numpy as np
from numba import njit

M1 = np.uint64(0xBF58476D1CE4E5B9)
M2 = np.uint64(0x94D049BB133111EB)
CANONICAL_NAN = np.uint64(0x7FF8000000000000)



@njit(inline="always", nogil=True, cache=True, boundscheck=False)
def _mix(z: np.uint64) -> np.uint64:
    z = z ^ (z >> np.uint64(30))
    z = z * M1
    z = z ^ (z >> np.uint64(27))
    z = z * M2
    return z ^ (z >> np.uint64(31))


@njit(inline="always", nogil=True, cache=True, boundscheck=False)
def _valid(bitmap: np.ndarray, bit: int) -> bool:
    return (bitmap[bit >> 3] >> (bit & 7)) & 1 == 1


@njit(nogil=True, cache=True, boundscheck=False)
def ints(acc_r: np.ndarray, acc_k: np.ndarray, key: bool, at: int, vals: np.ndarray, off: int, lo: int, hi: int,
         salt: np.uint64, null_h: np.uint64, bitmap: np.ndarray, has_nulls: bool) -> None:
    """INT family (any integer width, as a 64-bit two's complement word)."""
    for i in range(lo, hi):
        if has_nulls and not _valid(bitmap, off + i):
            h = null_h
        else:
            h = _mix(np.uint64(np.int64(vals[off + i])) ^ salt)
        acc_r[at + i] += h
        if key:
            acc_k[at + i] += h


@njit(nogil=True, cache=True, boundscheck=False)
def uints(acc_r: np.ndarray, acc_k: np.ndarray, key: bool, at: int, vals: np.ndarray, off: int, lo: int, hi: int,
          salt: np.uint64, null_h: np.uint64, bitmap: np.ndarray, has_nulls: bool) -> None:
    """UInt64 values (their own word)."""
    for i in range(lo, hi):
        if has_nulls and not _valid(bitmap, off + i):
            h = null_h
        else:
            h = _mix(np.uint64(vals[off + i]) ^ salt)
        acc_r[at + i] += h
        if key:
            acc_k[at + i] += h


@njit(nogil=True, cache=True, boundscheck=False)
def bools(acc_r: np.ndarray, acc_k: np.ndarray, key: bool, at: int, vals: np.ndarray, off: int, lo: int, hi: int,
          salt: np.uint64, null_h: np.uint64, bitmap: np.ndarray, has_nulls: bool) -> None:
    """Boolean from Arrow's bit-packed values (``vals``), as 0/1 in the INT family."""
    for i in range(lo, hi):
        if has_nulls and not _valid(bitmap, off + i):
            h = null_h
        else:
            h = _mix(np.uint64(1 if _valid(vals, off + i) else 0) ^ salt)
        acc_r[at + i] += h
        if key:
            acc_k[at + i] += h


@njit(nogil=True, cache=True, boundscheck=False)
def floats(acc_r: np.ndarray, acc_k: np.ndarray, key: bool, at: int, vals: np.ndarray, off: int, lo: int, hi: int,
           salt: np.uint64, null_h: np.uint64, bitmap: np.ndarray, has_nulls: bool) -> None:
    """FLOAT family: float64 bits (``vals`` is the float64 buffer viewed as uint64); -0.0 is
    +0.0 and every NaN is the canonical NaN."""
    expo = np.uint64(0x7FF0000000000000)
    frac = np.uint64(0x000FFFFFFFFFFFFF)
    zero = np.uint64(0x7FFFFFFFFFFFFFFF)
    for i in range(lo, hi):
        if has_nulls and not _valid(bitmap, off + i):
            h = null_h
        else:
            w = vals[off + i]
            if (w & zero) == 0:
                w = np.uint64(0)
            elif (w & expo) == expo and (w & frac) != 0:
                w = CANONICAL_NAN
            h = _mix(w ^ salt)
        acc_r[at + i] += h
        if key:
            acc_k[at + i] += h


@njit(nogil=True, cache=True, boundscheck=False)
def scaled(acc_r: np.ndarray, acc_k: np.ndarray, key: bool, at: int, vals: np.ndarray, off: int, lo: int, hi: int,
           salt: np.uint64, null_h: np.uint64, bitmap: np.ndarray, has_nulls: bool, mul: int, div: int) -> None:
    """Temporal families: the physical integer times ``mul``, floor-divided by ``div``."""
    for i in range(lo, hi):
        if has_nulls and not _valid(bitmap, off + i):
            h = null_h
        else:
            x = np.int64(vals[off + i])
            if mul != 1:
                x = x * mul
            if div != 1:
                x = x // div
            h = _mix(np.uint64(x) ^ salt)
        acc_r[at + i] += h
        if key:
            acc_k[at + i] += h


@njit(nogil=True, cache=True, boundscheck=False)
def strings(acc_r: np.ndarray, acc_k: np.ndarray, key: bool, at: int, offsets: np.ndarray, data: np.ndarray,
            off: int, lo: int, hi: int, seed: np.uint64, null_h: np.uint64, bitmap: np.ndarray,
            has_nulls: bool) -> None:
    """``bytes(utf8(v), seed)`` of each string or binary value, from Arrow offsets and data."""
    for i in range(lo, hi):
        if has_nulls and not _valid(bitmap, off + i):
            h = null_h
        else:
            start = np.int64(offsets[off + i])
            n = np.int64(offsets[off + i + 1]) - start
            h = _mix(seed ^ np.uint64(n))
            p = start
            end = start + n
            while p + 8 <= end:
                w = np.uint64(0)
                for b in range(8):
                    w |= np.uint64(data[p + b]) << np.uint64(8 * b)
                h = _mix(h ^ w)
                p += 8
            if p < end:
                w = np.uint64(0)
                for b in range(end - p):
                    w |= np.uint64(data[p + b]) << np.uint64(8 * b)
                h = _mix(h ^ w)
        acc_r[at + i] += h
        if key:
            acc_k[at + i] += h


@njit(nogil=True, cache=True, boundscheck=False)
def finish(acc: np.ndarray, lo: int, hi: int) -> None:
    """``mix`` in place over ``acc[lo:hi]``."""
    for i in range(lo, hi):
        acc[i] = _mix(acc[i])


@njit(nogil=True, cache=True, boundscheck=False)
def bucket_sums(kh: np.ndarray, rh: np.ndarray, shift: int, out: np.ndarray) -> None:
    """``out[kh >> shift] += rh`` (mod 2**64): the digests of the buckets of one tree level."""
    s = np.uint64(shift)
    for i in range(len(kh)):
        out[np.int64(kh[i] >> s)] += rh[i]


@njit(nogil=True, cache=True, boundscheck=False)
def select_leaves(kh: np.ndarray, want: np.ndarray, shift: int) -> np.ndarray:
    """Indices of the rows whose bucket (``kh >> shift``) is marked in ``want``."""
    s = np.uint64(shift)
    n = 0
    for i in range(len(kh)):
        if want[np.int64(kh[i] >> s)]:
            n += 1
    out = np.empty(n, dtype=np.int64)
    j = 0
    for i in range(len(kh)):
        if want[np.int64(kh[i] >> s)]:
            out[j] = i
            j += 1
    return out
