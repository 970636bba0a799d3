"""Drift binning: the compiled one-pass kernels count exactly what the numpy cells do."""

from __future__ import annotations

import numpy as np
import pytest

import pipelines.reconcile.drift as D


def test_compiled_binning_equals_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    if D._kernels(1 << 20) is None:
        pytest.skip("numba not installed")
    rng = np.random.default_rng(1)
    pops = [rng.standard_normal(200_000) * 7, rng.poisson(3, 150_000).astype(float),
            np.array([-0.0, 0.0, 1.0, -1e-300, 1e300, np.inf, -np.inf]), np.zeros(0)]
    fast = D.binned(pops)
    monkeypatch.setattr(D, "_kernels", lambda total: None)
    slow = D.binned(pops)
    assert fast.shape == slow.shape and (fast == slow).all()
    assert D.ks(fast[0], fast[1]) == D.ks(slow[0], slow[1])
