"""The bench's fresh-process runner: a result comes back; a child that dies without one is an
error naming how it ended, never a wait without end (a benchmark whose process was killed
once held ``lockstep bench`` for half an hour)."""

from __future__ import annotations

import os
import signal
import time

import pytest

from pipelines.bench._measure import in_subprocess


def _square(x: int) -> int:
    return x * x


def _killed() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _exits() -> None:
    os._exit(3)


def test_a_childs_result_comes_back() -> None:
    out = in_subprocess(_square, 7)
    assert out["ok"] and out["value"] == 49 and out["seconds"] >= 0


@pytest.mark.parametrize(("fn", "how"), [(_killed, "exit code -9, killed by a signal"), (_exits, "exit code 3)")])
def test_a_child_that_dies_without_a_result_is_an_error(fn: object, how: str) -> None:
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match="ended without a result") as err:
        in_subprocess(fn)  # type: ignore[arg-type]
    assert how in str(err.value)
    assert time.monotonic() - t0 < 30
