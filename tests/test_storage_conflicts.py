"""Concurrent writers of one partition: commit conflicts are retried with back-off, and one
that outlives the retries is one clear message naming the table and the interval.

Real processes write the same Delta partition at the same time; no mocks."""

from __future__ import annotations

import logging
import multiprocessing as mp
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from deltalake import DeltaTable

from pipelines.errors import StorageError
from pipelines.storage import append_rows, conflicts, read_table, retry_on_conflict, write_interval

PART = {"ds": "2026-01-01"}
ROWS = 200


def frame(writer: int, round_: int) -> pl.DataFrame:
    return pl.DataFrame({"k": list(range(ROWS)), "writer": [writer] * ROWS, "round": [round_] * ROWS,
                         "ds": [PART["ds"]] * ROWS})


def _writer(uri: str, writer: int, rounds: int, start: Any, out: Any, retries: int | None) -> None:
    if retries is not None:
        conflicts.COMMIT_RETRIES = retries
    start.wait()
    try:
        for r in range(rounds):
            write_interval(uri, frame(writer, r), partition=PART, app_id=f"lockstep/t/{PART['ds']}",
                           fingerprint=writer * 1000 + r, force=True)
            append_rows(uri + "_log", pl.DataFrame({"writer": [writer], "round": [r]}))
    except StorageError as exc:
        out.put(f"error: {exc}")
        return
    out.put("ok")


def race(uri: str, writers: int, rounds: int, retries: int | None = None) -> list[str]:
    """``writers`` processes, released at once, each writing the partition ``rounds`` times."""
    ctx = mp.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(uri, w, rounds, start, out, retries)) for w in range(writers)]
    for p in procs:
        p.start()
    start.set()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    return results


def test_concurrent_writers_of_one_partition_all_succeed(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    write_interval(uri, frame(99, 0), partition=PART, app_id="seed", fingerprint=1)
    outcomes = race(uri, writers=4, rounds=8)
    assert outcomes == ["ok"] * 4, outcomes
    df = read_table(uri, partition=PART).collect()
    assert df.height == ROWS, "the partition holds exactly one writer's rows: no duplicates, nothing lost"
    assert df["k"].n_unique() == ROWS and df.select(["writer", "round"]).unique().height == 1
    assert DeltaTable(uri).version() >= 4 * 8, "every write committed"
    log = read_table(uri + "_log").collect()
    assert log.height == 4 * 8, "every append landed once"


def test_a_conflict_that_outlives_the_retries_names_table_and_interval(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    uri = str(tmp_path / "t")
    write_interval(uri, frame(0, 0), partition=PART, app_id="a", fingerprint=1)
    stale = DeltaTable(uri)  # a writer that read the table before another one replaced the partition
    write_interval(uri, frame(1, 0), partition=PART, app_id="a", fingerprint=2)
    attempts = []

    def commit_from_stale_snapshot() -> None:
        attempts.append(1)
        stale.delete("ds = '2026-01-01'")

    monkeypatch.setattr(conflicts, "COMMIT_RETRIES", 2)
    monkeypatch.setattr(conflicts, "COMMIT_BACKOFF", 0.001)
    with pytest.raises(StorageError) as exc:
        retry_on_conflict(commit_from_stale_snapshot, f"{uri}: write of ds = '2026-01-01'")()
    msg = str(exc.value)
    assert uri in msg and "2026-01-01" in msg and "after 2 retries" in msg and "\n" not in msg
    assert exc.value.retryable
    assert len(attempts) == 3
    assert read_table(uri, partition=PART).collect()["writer"].unique().to_list() == [1], "the winner's rows stand"



def test_each_conflict_retry_logs_a_warning_with_its_attempt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    """A commit retried after a conflict is one WARNING line: what is retried and which attempt."""
    uri = str(tmp_path / "t")
    write_interval(uri, frame(0, 0), partition=PART, app_id="a", fingerprint=1)
    stale = DeltaTable(uri)
    write_interval(uri, frame(1, 0), partition=PART, app_id="a", fingerprint=2)
    attempts = []

    def conflicts_once_then_commits() -> None:
        attempts.append(1)
        if len(attempts) == 1:
            stale.delete("ds = '2026-01-01'")  # a commit from a stale snapshot: a conflict

    monkeypatch.setattr(conflicts, "COMMIT_BACKOFF", 0.001)
    what = f"{uri}: write of ds = '2026-01-01'"
    with caplog.at_level(logging.WARNING, logger="pipelines.storage"):
        retry_on_conflict(conflicts_once_then_commits, what)()
    assert len(attempts) == 2
    retries = [r for r in caplog.records if r.name.startswith("pipelines.storage") and r.levelno == logging.WARNING]
    assert len(retries) == 1, [r.getMessage() for r in retries]
    line = retries[0].getMessage()
    assert what in line and f"retry 1 of {conflicts.COMMIT_RETRIES}" in line and "\n" not in line

def _in_order(uri: str, writer: int, rounds: int, start: Any, out: Any) -> None:
    from pipelines.storage import append_in_order

    start.wait()
    try:
        for r in range(rounds):
            append_in_order(uri, lambda v, r=r: pl.DataFrame({"writer": [writer], "round": [r], "log_version": [v]}))
        out.put("ok")
    except Exception as exc:  # reported to the parent, which asserts on it
        out.put(f"{type(exc).__name__}: {exc}")


def test_appends_in_log_order_carry_the_version_of_their_commit_under_concurrent_writers(tmp_path: Path) -> None:
    uri = str(tmp_path / "log")
    writers, rounds = 4, 5
    ctx = mp.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_in_order, args=(uri, w, rounds, start, out)) for w in range(writers)]
    for p in procs:
        p.start()
    start.set()
    results = [out.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(60)
    assert results == ["ok"] * writers, results
    dt = DeltaTable(uri)
    assert dt.version() == writers * rounds  # version 0 is the empty table the first writer created
    rows = pl.read_delta(uri)
    assert sorted(rows["log_version"].to_list()) == list(range(1, writers * rounds + 1))  # each once, no gap
    for v in (1, writers * rounds // 2, writers * rounds):  # each row is in exactly the commit it names
        new = pl.read_delta(uri, version=v).join(pl.read_delta(uri, version=v - 1), on=["writer", "round"], how="anti")
        assert new["log_version"].to_list() == [v]


def _create_race(root: str, writer: int, tables: int, barrier: Any, out: Any) -> None:
    from pipelines.storage import append_in_order

    try:
        for t in range(tables):
            barrier.wait(60)  # every writer meets the missing table at once: each one tries to create it
            append_in_order(f"{root}/t{t}", lambda v: pl.DataFrame({"writer": [writer], "log_version": [v]}))
        out.put("ok")
    except Exception as exc:  # reported to the parent, which asserts on it
        out.put(f"{type(exc).__name__}: {exc}")


def test_writers_racing_to_create_a_log_leave_one_create_and_one_commit_each(tmp_path: Path) -> None:
    """deltalake rebases a losing create over the winner's by default, leaving a second create at
    version 1 that no row names; here the loser's create fails and it appends to the winner's table."""
    writers, tables = 4, 12
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(writers), ctx.Queue()
    procs = [ctx.Process(target=_create_race, args=(str(tmp_path), w, tables, barrier, out)) for w in range(writers)]
    for p in procs:
        p.start()
    results = [out.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(60)
    assert results == ["ok"] * writers, results
    for t in range(tables):
        uri = str(tmp_path / f"t{t}")
        creates = [h for h in DeltaTable(uri).history() if h.get("operation") == "CREATE TABLE"]
        assert len(creates) == 1 and DeltaTable(uri).version() == writers, (uri, DeltaTable(uri).history())
        assert sorted(pl.read_delta(uri)["log_version"].to_list()) == list(range(1, writers + 1))
