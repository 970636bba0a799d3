"""Appends to the control-plane tables (evidence, check results, decisions, maintenance log)
and the tables one decision opens once (:class:`OpenTables`).

:func:`append_rows` is a blind append (delta-rs rebases it over concurrent commits);
:func:`append_in_order` appends rows that carry the version of the commit holding them, so a
lost race is retried with the rows rebuilt rather than rebased.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar, Token
from typing import Any

import polars as pl
import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake.exceptions import DeltaError

from pipelines.errors import StorageError
from pipelines.storage.conflicts import TABLE_CONFIGURATION, create_table, retry_on_conflict
from pipelines.storage.tables import open_table

log = logging.getLogger(__name__)

#: table properties every control-plane table (evidence, check results, decisions, maintenance
#: log) is created with: a checkpoint every 10 commits, so opening one replays at most 10 JSON
#: commits however long its history grows (delta-rs writes the checkpoint after the commit)
CONTROL_TABLE_CONFIGURATION: dict[str, str | None] = TABLE_CONFIGURATION


def _append(uri: str, arrow: pa.Table, storage_options: dict[str, str] | None, partition_by: list[str] | None,
            table: DeltaTable | None) -> DeltaTable:
    """Append ``arrow`` to the table at ``uri`` (through ``table`` when it is already open,
    else opened here; created with :data:`CONTROL_TABLE_CONFIGURATION` when there is none);
    returns the table at the version of the append (or a newer one)."""
    opts = storage_options or None
    state: dict[str, Any] = {"dt": table if table is not None else open_table(uri, storage_options), "tries": 0}

    def once() -> DeltaTable:
        dt = state["dt"]
        if state["tries"]:  # a retry after a conflict: see what the winner committed first
            if dt is None:
                dt = state["dt"] = open_table(uri, storage_options)
            else:
                dt.update_incremental()
        state["tries"] += 1
        if dt is None:
            write_deltalake(uri, arrow, mode="append", schema_mode="merge", storage_options=opts,
                            partition_by=partition_by or None, configuration=CONTROL_TABLE_CONFIGURATION)
            dt = state["dt"] = open_table(uri, storage_options)
            if dt is None:
                raise StorageError(f"{uri}: the table an append created cannot be opened", uri=uri)
            return dt
        # writing through the open table commits on top of its snapshot (a blind append: delta-rs
        # rebases it over concurrent commits) and moves it to the new version, without a log replay
        write_deltalake(dt, arrow, mode="append", schema_mode="merge",
                        partition_by=list(dt.metadata().partition_columns) or None)
        return dt

    try:
        return retry_on_conflict(once, f"{uri}: append")()
    except (DeltaError, OSError, pa.ArrowException) as exc:
        raise StorageError(f"{uri}: append failed: {exc}", uri=uri) from exc


def append_rows(uri: str, rows: pa.Table | pl.DataFrame, storage_options: dict[str, str] | None = None,
                partition_by: list[str] | None = None, *, table: DeltaTable | None = None) -> int:
    """Append to a bookkeeping table (check results, certifications, evidence); returns the
    new version. ``partition_by`` applies when the append creates the table (an existing
    table keeps the partitioning it was created with); so does :data:`CONTROL_TABLE_CONFIGURATION`.
    ``table``: the table at ``uri``, already open (written through and moved to the new version)."""
    arrow = rows.to_arrow() if isinstance(rows, pl.DataFrame) else rows
    return _append(uri, arrow, storage_options, partition_by, table).version()


#: how many control tables :meth:`OpenTables.prefetch` opens at once
PREFETCH_THREADS = 4


class OpenTables:
    """Control-plane tables opened once for one decision, by URI.

    The first :meth:`get` of a table opens it (a log replay); each later one brings the same
    object up to the newest committed version, reading only the commits since. So a reader
    always sees what a fresh open would see at that moment (never an older version than the
    store holds), without replaying the log again. Writes go through :meth:`append`, which
    commits through the open table.

    One per decision: ``with OpenTables(options) as tables:`` makes them the decision's tables
    for the block, so code that runs inside it (the checks, the decision log) shares them
    through :func:`decision_tables`; on leaving, they are forgotten.

    Inside the block, ``append(..., defer=True)`` holds the rows back: a table's deferred rows
    are committed together, in one append, when the block ends or before
    anything reads or appends to that table (:meth:`get`, :meth:`append`), so a reader in the
    block still sees every row appended before it. A step that publishes several tables'
    evidence and its checks makes one commit per table, not one per call. Rows deferred by a
    block that fails are still committed as it ends (what the block wrote stays described); a
    process killed inside the block commits none of them, as if it had died before appending."""

    def __init__(self, storage_options: dict[str, str] | None = None) -> None:
        self.storage_options = dict(storage_options or {})
        self._tables: dict[str, DeltaTable] = {}
        self._fresh: set[str] = set()  # opened by prefetch, not read yet
        self._tokens: list[Token[OpenTables | None]] = []
        #: rows appended with ``defer``, per table, not committed yet (with the partitioning
        #: a table created by their commit gets)
        self._deferred: dict[str, tuple[list[pl.DataFrame], list[str] | None]] = {}
        self._failed: dict[str, Exception] = {}  # deferred rows whose commit failed, by table

    def __enter__(self) -> OpenTables:
        outer = _DECISION_TABLES.get()
        if outer is not None and outer is not self:  # what this block reads includes what the outer one deferred
            outer.flush()
        self._tokens.append(_DECISION_TABLES.set(self))
        return self

    def flush(self) -> None:
        """Commit every table's deferred rows now (a failed commit raises, and is raised again
        when the block ends)."""
        while self._deferred:
            self._commit(next(iter(self._deferred)))

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        try:
            if not self._tokens[1:]:  # the outermost entry commits what the block deferred
                self._commit_deferred(failing=exc_type is not None)
        finally:
            _DECISION_TABLES.reset(self._tokens.pop())
            if not self._tokens:
                self._tables.clear()
                self._fresh.clear()

    def _commit_deferred(self, *, failing: bool) -> None:
        """Commit every table's deferred rows (one append each, in the order first deferred), then
        raise the first commit of the block that failed, even one a reader in the block caught
        (rows are never dropped silently). While the block's own error propagates, failed
        commits are logged and the block's error kept."""
        while self._deferred:
            with suppress(Exception):  # kept in _failed
                self.flush()
        failed, self._failed = self._failed, {}
        for uri, exc in failed.items():
            if not failing:
                raise exc
            log.warning("%s: rows deferred by a failed block not appended: %s", uri, exc)

    def _commit(self, uri: str) -> None:
        """Append ``uri``'s deferred rows now, in one commit (a failure is also kept, to be
        raised again when the block ends)."""
        frames, partition_by = self._deferred.pop(uri)
        try:
            # one record batch: delta-rs writes it as one file (batches may be written side by side)
            self._append_now(uri, pl.concat(frames, how="vertical_relaxed", rechunk=True).to_arrow(), partition_by)
        except Exception as exc:
            self._failed.setdefault(uri, exc)
            raise

    def _append_now(self, uri: str, arrow: pa.Table, partition_by: list[str] | None) -> int:
        self._fresh.discard(uri)
        dt = _append(uri, arrow, self.storage_options, partition_by, self._tables.get(uri))
        self._tables[uri] = dt
        return dt.version()

    def prefetch(self, uris: list[str]) -> None:
        """Open the tables of ``uris`` not open yet side by side (delta-rs replays each log
        without holding the GIL): what a decision reads from every region's prefix costs about
        one open's time, not one per table. The next :meth:`get` of each returns it as opened
        here (no second look at its log); a table that is absent or fails to open is left to
        :meth:`get`, which opens it again and reports it as it always does."""
        todo = [u for u in dict.fromkeys(uris) if u not in self._tables and u not in self._deferred]
        if len(todo) < 2:
            return
        from concurrent.futures import ThreadPoolExecutor

        def one(uri: str) -> DeltaTable | None:
            try:
                return open_table(uri, self.storage_options)
            except StorageError:
                return None

        with ThreadPoolExecutor(max_workers=min(len(todo), PREFETCH_THREADS)) as pool:
            for uri, dt in zip(todo, pool.map(one, todo), strict=True):
                if dt is not None:
                    self._tables[uri] = dt
                    self._fresh.add(uri)

    def get(self, uri: str) -> DeltaTable | None:
        """The table at ``uri`` at its newest committed version, or None when there is none
        (rows the block deferred for it committed first)."""
        if uri in self._deferred:
            self._commit(uri)
            return self._tables[uri]
        if uri in self._fresh:  # opened by prefetch for this read: already at its newest version
            self._fresh.discard(uri)
            return self._tables[uri]
        dt = self._tables.get(uri)
        if dt is None:
            dt = open_table(uri, self.storage_options)
            if dt is not None:
                self._tables[uri] = dt
            return dt
        try:
            dt.update_incremental()
        except (DeltaError, OSError) as exc:
            raise StorageError(f"{uri}: cannot read the Delta table's new commits: {exc}", uri=uri) from exc
        return dt

    def append(self, uri: str, rows: pa.Table | pl.DataFrame, partition_by: list[str] | None = None, *,
               defer: bool = False) -> int | None:
        """:func:`append_rows` through the open table; returns the new version. ``defer``
        (inside the block): held back, committed with the table's other deferred rows when
        the block ends or the table is read (returns None)."""
        deferring = defer and bool(self._tokens)
        if deferring or uri in self._deferred:  # a plain append: one commit with the rows deferred before
            frames = self._deferred.setdefault(uri, ([], partition_by))[0]
            frames.append(rows if isinstance(rows, pl.DataFrame) else pl.DataFrame(rows))
            if deferring:
                return None
            self._commit(uri)
            return self._tables[uri].version()
        return self._append_now(uri, rows.to_arrow() if isinstance(rows, pl.DataFrame) else rows, partition_by)


_DECISION_TABLES: ContextVar[OpenTables | None] = ContextVar("lockstep_decision_tables", default=None)


def decision_tables(storage_options: dict[str, str] | None = None) -> OpenTables:
    """The open control tables of the decision in progress (a ``with OpenTables(...)`` block
    with the same storage options), else new ones, for this call alone."""
    current = _DECISION_TABLES.get()
    if current is not None and current.storage_options == dict(storage_options or {}):
        return current
    if current is not None:  # other tables, read through other options, include what the block deferred
        current.flush()
    return OpenTables(storage_options)


@contextmanager
def control_tables(storage_options: dict[str, str] | None = None) -> Iterator[OpenTables]:
    """The open control tables of the block in progress when it has the same storage options
    (a step inside a region's run shares the run's), else new ones, open for this block."""
    tables = decision_tables(storage_options)
    if tables is _DECISION_TABLES.get():  # the block in progress's: it closes them
        yield tables
        return
    with tables:
        yield tables


def append_in_order(uri: str, build: Callable[[int], pl.DataFrame], storage_options: dict[str, str] | None = None,
                    *, tables: OpenTables | None = None, partition_by: list[str] | None = None) -> int:
    """Append the rows ``build(v)`` makes as exactly commit ``v`` of the table at ``uri``: the
    rows carry the version of the commit that holds them, so the log's order is in the rows.

    A blind append would be rebased over a concurrent writer's commit (and land at another
    version than its rows say); here a lost race is not rebased but tried again, with the rows
    rebuilt for the next free version. The table is created empty first (version 0: no rows),
    so every row's version is that of a real append. Returns the version written."""
    opts = storage_options or None
    tables = tables or decision_tables(storage_options)

    def once() -> int:
        dt = tables.get(uri)
        if dt is None:
            create_table(uri, build(0).to_arrow().schema, partition_by=partition_by, mode="ignore",
                         storage_options=opts, configuration=CONTROL_TABLE_CONFIGURATION)
            dt = tables.get(uri)
            if dt is None:
                raise StorageError(f"{uri}: the table just created cannot be opened", uri=uri)
        version = dt.version() + 1
        # no rebase: a lost race raises, and retry_on_conflict builds the rows again for the next version
        write_deltalake(dt, build(version).to_arrow(), mode="append", schema_mode="merge",
                        commit_properties=CommitProperties(max_commit_retries=0))
        if dt.version() != version:  # cannot happen without a rebase; never leave a row misnumbered silently
            raise StorageError(f"{uri}: the append meant as version {version} landed at {dt.version()}", uri=uri)
        return version

    try:
        return retry_on_conflict(once, f"{uri}: append in log order")()
    except (DeltaError, OSError, pa.ArrowException) as exc:
        raise StorageError(f"{uri}: append failed: {exc}", uri=uri) from exc
