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
