"""Compiled kernels for drift binning (numba): each value's cell of the order-preserving grid
(:mod:`pipelines.evidence.cells`) computed and counted in one pass, with no temporaries the
size of the column. Imported lazily by :mod:`pipelines.reconcile.drift`."""

from __future__ import annotations

import numpy as np
from numba import njit

from pipelines.evidence.cells import CELL_BITS

_SHIFT = 64 - CELL_BITS


@njit(inline="always", nogil=True, cache=True)
def _cell(bits: np.int64) -> np.int64:
    m = (bits >> np.int64(63)) | np.int64(-(2**63))
    return np.int64(np.uint64(bits ^ m) >> np.uint64(_SHIFT))


@njit(nogil=True, cache=True, boundscheck=False)
def add_cells(x: np.ndarray, bits: np.ndarray, counts: np.ndarray) -> None:
    """``counts[cell(v)] += 1`` for every value (``bits``: the same float64 buffer as int64;
    NaN skipped, -0.0 counted as +0.0)."""
    for i in range(len(x)):
        v = x[i]
        if v != v:
            continue
        counts[_cell(np.int64(0) if v == 0.0 else bits[i])] += 1


@njit(nogil=True, cache=True, boundscheck=False)
def add_compact(x: np.ndarray, bits: np.ndarray, lut: np.ndarray, out: np.ndarray) -> None:
    """``out[lut[cell(v)]] += 1``: counts over the compacted non-empty cells."""
    for i in range(len(x)):
        v = x[i]
        if v != v:
            continue
        out[lut[_cell(np.int64(0) if v == 0.0 else bits[i])]] += 1
