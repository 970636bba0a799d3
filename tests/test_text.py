"""What people read holds plain values: no numpy reprs, floats to six significant digits."""

from __future__ import annotations

import doctest

import numpy as np

import pipelines.text
from pipelines.text import plain, shown


def test_numpy_values_read_as_plain_numbers() -> None:
    assert shown(np.float64(2392.16620001)) == "2392.17"
    assert shown(np.int64(7)) == "7"
    assert shown({"quantiles": np.array([0.05, 0.95]), "n": np.int32(3)}) == "{'quantiles': [0.05, 0.95], 'n': 3}"
    assert "np." not in shown([np.float32(1.5), np.bool_(True), "x"])
    assert plain({"a": (np.float64(1.0),)}) == {"a": [1.0]} and type(plain(np.float64(1.0))) is float


def test_the_module_examples_hold() -> None:
    assert doctest.testmod(pipelines.text).failed == 0
