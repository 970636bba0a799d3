"""The control-plane table helpers of one decision: :class:`OpenTables` (each table opened once,
never older than the store) and :func:`scan_partition` (one partition's files, read directly)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from deltalake import DeltaTable, write_deltalake

from pipelines.errors import StorageError
from pipelines.storage import (
    CONTROL_TABLE_CONFIGURATION,
    OpenTables,
    append_rows,
    decision_tables,
    scan_partition,
)


def test_a_table_opened_once_still_reads_what_another_writer_committed_since(tmp_path: Path) -> None:
    uri = str(tmp_path / "results")
    tables = OpenTables()
    assert tables.get(uri) is None
    tables.append(uri, pl.DataFrame({"interval": ["a"], "x": [1]}), partition_by=["interval"])
    dt = tables.get(uri)
    assert dt is not None and dt.metadata().configuration == CONTROL_TABLE_CONFIGURATION
    append_rows(uri, pl.DataFrame({"interval": ["a"], "x": [2]}))  # another writer, its own open
    again = tables.get(uri)
    assert again is dt and again.version() == DeltaTable(uri).version()
    assert sorted(scan_partition(again, {"interval": "a"}).collect()["x"].to_list()) == [1, 2]
    tables.append(uri, pl.DataFrame({"interval": ["a"], "x": [3]}))
    assert tables.get(uri).version() == DeltaTable(uri).version() == 2  # type: ignore[union-attr]


def test_the_decision_tables_are_shared_inside_the_block_only(tmp_path: Path) -> None:
    with OpenTables({}) as tables:
        assert decision_tables(None) is tables
        assert decision_tables({"other": "options"}) is not tables
    assert decision_tables(None) is not tables


def test_scan_partition_reads_one_partition_in_the_table_schema(tmp_path: Path) -> None:
    uri = str(tmp_path / "evidence")
    write_deltalake(uri, pl.DataFrame({"interval": ["a", "b"], "table": ["t", "u"], "v": [1, 2]}).to_arrow(),
                    mode="append", partition_by=["interval"])
    # a later column: the earlier files read it as null
    append_rows(uri, pl.DataFrame({"interval": ["a", "a"], "table": ["t", "u"], "v": [3, 4], "w": ["x", "y"]}))
    dt = DeltaTable(uri)
    a = scan_partition(dt, {"interval": "a"}).sort("v").collect()
    assert a.columns == pl.scan_delta(uri).collect_schema().names()  # the table's order, as polars reads it
    assert a.to_dict(as_series=False) == {"interval": ["a"] * 3, "table": ["t", "t", "u"], "v": [1, 3, 4],
                                          "w": [None, "x", "y"]}
    assert scan_partition(dt, {"interval": "a"}, where={"table": "u"}).collect()["v"].to_list() == [4]
    assert scan_partition(dt, {"interval": "c"}).collect().height == 0
    whole = scan_partition(dt, {}).collect()  # every partition: each row keeps its own
    assert sorted(zip(whole["interval"], whole["v"], strict=True)) == [("a", 1), ("a", 3), ("a", 4), ("b", 2)]


def test_prefetched_tables_are_read_as_opened_then_brought_up_to_date(tmp_path: Path) -> None:
    uris = [str(tmp_path / f"region-{i}") for i in range(3)]
    for i, uri in enumerate(uris[:2]):
        append_rows(uri, pl.DataFrame({"interval": ["a"], "x": [i]}), partition_by=["interval"])
    broken = tmp_path / "broken" / "_delta_log"
    broken.mkdir(parents=True)
    (broken / "00000000000000000000.json").write_text("not a delta log\n")
    tables = OpenTables()
    tables.prefetch([*uris, str(tmp_path / "broken")])
    assert [tables.get(u) is not None for u in uris] == [True, True, False]  # the absent one is absent
    append_rows(uris[0], pl.DataFrame({"interval": ["a"], "x": [9]}))  # another writer, after the prefetch
    assert tables.get(uris[0]).version() == 1  # type: ignore[union-attr]  # the next read brings it up to date
    with pytest.raises(StorageError, match="broken"):  # a table that fails to open fails as it always did
        tables.get(str(tmp_path / "broken"))


def _rows(uri: str) -> list[int]:
    return pl.read_delta(uri)["x"].to_list() if (Path(uri) / "_delta_log").is_dir() else []


def test_deferred_appends_commit_once_per_table_and_every_reader_in_the_block_sees_them(tmp_path: Path) -> None:
    """Rows appended with ``defer`` inside a block: one commit per table when the block ends;
    a read of the table in the block, or a plain append to it, commits them first (in order)."""
    ev, ck = str(tmp_path / "evidence"), str(tmp_path / "checks")
    with OpenTables() as tables:
        for x in (1, 2):
            assert tables.append(ev, pl.DataFrame({"interval": ["a"], "x": [x]}), ["interval"], defer=True) is None
        tables.append(ck, pl.DataFrame({"interval": ["a"], "x": [10]}), ["interval"], defer=True)
        assert _rows(ev) == [] and _rows(ck) == []  # nothing committed yet
        read = tables.get(ev)  # a reader in the block: the deferred rows first, in one commit
        assert read is not None and read.version() == 0
        assert sorted(scan_partition(read, {"interval": "a"}).collect()["x"].to_list()) == [1, 2]
        tables.append(ck, pl.DataFrame({"interval": ["a"], "x": [11]}), ["interval"], defer=True)
        assert tables.append(ck, pl.DataFrame({"interval": ["a"], "x": [12]})) == 0  # plain: deferred rows with it
        tables.append(ev, pl.DataFrame({"interval": ["a"], "x": [3]}), defer=True)
    assert DeltaTable(ev).version() == 1 and DeltaTable(ck).version() == 0  # one commit per table and flush
    assert sorted(_rows(ev)) == [1, 2, 3] and sorted(_rows(ck)) == [10, 11, 12]
    assert DeltaTable(ev).metadata().partition_columns == ["interval"]
    # a decision's own tables (another block, or the tables of other options) opened inside a
    # step: they read every row the step deferred before them
    with OpenTables() as step:
        step.append(ev, pl.DataFrame({"interval": ["a"], "x": [5]}), defer=True)
        with OpenTables() as decision:
            assert 5 in scan_partition(decision.get(ev), {"interval": "a"}).collect()["x"]  # type: ignore[arg-type]
        step.append(ev, pl.DataFrame({"interval": ["a"], "x": [6]}), defer=True)
        assert decision_tables({"other": "options"}).get(ev).version() == 3  # type: ignore[union-attr]
    assert DeltaTable(ev).version() == 3 and sorted(_rows(ev)) == [1, 2, 3, 5, 6]
    # outside a block there is nothing to defer to: committed at once
    assert OpenTables().append(ev, pl.DataFrame({"interval": ["b"], "x": [4]}), defer=True) == 4


def test_a_failing_block_still_commits_what_it_deferred_and_raises_its_own_error(tmp_path: Path) -> None:
    uri = str(tmp_path / "evidence")
    with pytest.raises(RuntimeError, match="the step failed"), OpenTables() as tables:
        tables.append(uri, pl.DataFrame({"interval": ["a"], "x": [1]}), defer=True)
        raise RuntimeError("the step failed")
    assert _rows(uri) == [1]
    # a deferred commit that cannot be made, inside a failing block: the block's error, not the commit's
    bad = tmp_path / "not-a-table"
    (bad / "_delta_log").mkdir(parents=True)
    (bad / "_delta_log" / "00000000000000000000.json").write_text("not a delta log\n")
    with pytest.raises(RuntimeError, match="the step failed"), OpenTables() as tables:
        tables.append(str(bad), pl.DataFrame({"x": [1]}), defer=True)
        raise RuntimeError("the step failed")
    # and without an error of its own, the block fails with the commit's, even when a reader in
    # the block (a best-effort one, like the index refresh) caught it: never dropped silently
    with pytest.raises(StorageError, match="not-a-table"), OpenTables() as tables:
        tables.append(str(bad), pl.DataFrame({"x": [1]}), defer=True)
        with pytest.raises(StorageError, match="not-a-table"):
            tables.get(str(bad))


def test_a_process_killed_inside_the_block_commits_none_of_its_deferred_rows(tmp_path: Path) -> None:
    """As if it had died before appending: the step's retry publishes again (never half a batch)."""
    import subprocess
    import sys

    uri = str(tmp_path / "evidence")
    code = ("import os, polars as pl\nfrom pipelines.storage import OpenTables\n"
            "with OpenTables() as t:\n"
            f"    t.append({uri!r}, pl.DataFrame({{'x': [1]}}), defer=True)\n"
            f"    t.append({uri!r}, pl.DataFrame({{'x': [2]}}), defer=True)\n"
            "    os._exit(9)\n")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 9
    assert _rows(uri) == []
