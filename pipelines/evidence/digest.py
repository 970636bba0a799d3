"""The digest tree: per-bucket sums of row hashes, rows placed by the top bits of their key hash.

A level with ``2**bits`` buckets is the sum (mod 2**64) of the row hashes of the rows whose
key hash starts with each ``bits``-bit prefix; sums add up, so a parent bucket is the sum of
its children and a table's chunks add into one level. Parity descends it
(:mod:`pipelines.reconcile.descent`) to find the rows two regions disagree on.
"""

from __future__ import annotations

import math

import numpy as np

from pipelines.evidence.compiled import kernels


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
