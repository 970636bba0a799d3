"""The order-preserving cell grid drift is measured on.

Every float maps to a cell: the top ``CELL_BITS`` bits of its IEEE-754 bits, made monotonic
(sign flipped), so cells keep value order and per-population cell counts give every CDF.
Regions count their values per cell when they profile a table version; the gate adds the
counts (:mod:`pipelines.reconcile.drift`).
"""

from __future__ import annotations

import numpy as np

CELL_BITS = 22
_SIGN = np.uint64(1 << 63)
_SHIFT = np.uint64(64 - CELL_BITS)


def cells(x: np.ndarray) -> np.ndarray:
    """Order-preserving cell index of each float (NaN must be removed first)."""
    x = np.array(x, dtype=np.float64)  # a copy we may change in place
    x += 0.0  # -0.0 + 0.0 == +0.0
    s = x.view(np.int64)
    mask = s >> 63  # all ones for negatives (arithmetic shift), else 0
    mask |= np.int64(-(2**63))
    s ^= mask  # negatives: flip every bit; positives: set the sign bit
    k = s.view(np.uint64)
    k >>= _SHIFT
    return k.view(np.int64)
