"""Commit conflicts: recognising a commit that lost a race with a concurrent writer, and
trying it again with exponential back-off and jitter (one loop for every commit race:
interval writes and appends alike). Each retry is one WARNING line naming what is retried.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

from deltalake import CommitProperties, DeltaTable
from deltalake.exceptions import CommitFailedError, DeltaError

from pipelines.errors import StorageError

log = logging.getLogger(__name__)

#: how often a commit that lost a race with a concurrent writer is tried again: a log append
#: under contention (12 regions publishing at once, on a loaded host) can lose several races in
#: a row; ten back-offs wait up to about 11 s in all before the error says to run it again
COMMIT_RETRIES = 10

#: first back-off (seconds); doubles per retry, with jitter, capped at COMMIT_BACKOFF_CAP
COMMIT_BACKOFF = 0.05
COMMIT_BACKOFF_CAP = 2.0
_CONFLICT_MARKS = ("concurrent", "conflict", "already exists", "version already")
_R = TypeVar("_R")


def is_commit_conflict(exc: BaseException) -> bool:
    """Did a commit lose a race with another writer (so that trying again can succeed)?"""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, CommitFailedError):
            return True
        if isinstance(seen, DeltaError | StorageError) and any(m in str(seen).lower() for m in _CONFLICT_MARKS):
            return True
        seen = seen.__cause__
    return False


def retry_on_conflict(fn: Callable[..., _R], what: str) -> Callable[..., _R]:
    """``fn`` called again, with exponential back-off and jitter, while its commit conflicts
    with a concurrent writer; a conflict that survives :data:`COMMIT_RETRIES` retries is one
    :class:`StorageError` naming ``what`` (the table and the interval or append)."""

    def call(*args: Any, **kwargs: Any) -> _R:
        delay = COMMIT_BACKOFF
        for attempt in range(COMMIT_RETRIES + 1):
            try:
                return fn(*args, **kwargs)
            except (DeltaError, StorageError) as exc:
                if not is_commit_conflict(exc):
                    raise
                if attempt == COMMIT_RETRIES:
                    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                    first = first.rsplit("Commit failed: ", 1)[-1].rstrip(".")
                    raise StorageError(
                        f"{what}: commit still conflicts with a concurrent writer after {COMMIT_RETRIES} "
                        f"retries ({first}); run it again", retryable=True) from exc
            pause = delay * (0.5 + random.random())
            log.warning("%s: commit conflicts with a concurrent writer; retry %d of %d in %.2f s",
                        what, attempt + 1, COMMIT_RETRIES, pause)
            time.sleep(pause)
            delay = min(delay * 2, COMMIT_BACKOFF_CAP)
        raise AssertionError("unreachable")

    return call


#: every table Lockstep creates: a checkpoint every 10 commits, so that opening a table replays
#: at most 9 commits after a checkpoint (delta-rs's default, 100, made an open of a table
#: written every 15 minutes cost ~60 ms by the end of a day)
TABLE_CONFIGURATION: dict[str, str | None] = {"delta.checkpointInterval": "10"}


def create_table(uri: str, schema: Any, *, partition_by: list[str] | None = None, mode: str = "error",
                 storage_options: dict[str, str] | None = None,
                 configuration: dict[str, str | None] | None = None) -> DeltaTable:
    """Create the empty table at ``uri`` as exactly version 0, or lose the race.

    deltalake retries a losing create by default, rebasing it over the winner's commit: two
    writers creating the same table at once then leave a second create (metadata and protocol)
    at version 1 or later, a commit no writer meant (an append's rows would then name the wrong
    version). Here the loser's commit fails (:class:`CommitFailedError`, a conflict): its caller,
    under :func:`retry_on_conflict`, opens the table the winner created. ``configuration``
    defaults to :data:`TABLE_CONFIGURATION`."""
    return DeltaTable.create(uri, schema, mode=mode,  # type: ignore[arg-type]
                             partition_by=partition_by or None, storage_options=storage_options or None,
                             configuration=TABLE_CONFIGURATION if configuration is None else configuration,
                             commit_properties=CommitProperties(max_commit_retries=0))
