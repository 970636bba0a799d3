"""Delta IO: idempotent interval writes, skips on unchanged inputs, and killed writes."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import polars as pl
import pytest

from pipelines.storage import history, read_table, table_version, write_interval


def frame(ds: str, n: int, start: int = 0) -> pl.DataFrame:
    return pl.DataFrame({"id": list(range(start, start + n)), "v": [float(i) for i in range(n)], "ds": [ds] * n})


def test_rewrite_replaces_exactly_one_partition(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    write_interval(uri, frame("2026-01-01", 10), partition={"ds": "2026-01-01"}, app_id="a/1", fingerprint=1)
    write_interval(uri, frame("2026-01-02", 5), partition={"ds": "2026-01-02"}, app_id="a/2", fingerprint=1)
    ref = write_interval(uri, frame("2026-01-01", 7, 100), partition={"ds": "2026-01-01"}, app_id="a/1", fingerprint=2)
    df = read_table(uri).collect()
    assert ref.rows == 7 and not ref.skipped
    assert df.filter(pl.col("ds") == "2026-01-01")["id"].sort().to_list() == list(range(100, 107))
    assert df.filter(pl.col("ds") == "2026-01-02").height == 5


def test_same_inputs_are_not_written_again(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    first = write_interval(uri, frame("2026-01-01", 10), partition={"ds": "2026-01-01"}, app_id="a/1", fingerprint=42)
    again = write_interval(uri, frame("2026-01-01", 10), partition={"ds": "2026-01-01"}, app_id="a/1", fingerprint=42)
    assert again.skipped and again.version == first.version and again.rows == 10
    forced = write_interval(uri, frame("2026-01-01", 10), partition={"ds": "2026-01-01"}, app_id="a/1",
                            fingerprint=42, force=True)
    assert forced.version == first.version + 1
    assert read_table(uri).collect().height == 10, "a forced rewrite neither duplicates nor drops rows"



def test_an_unchanged_rewrite_logs_its_skip(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """An idempotent skip is one INFO line in the task log: the table, the interval, the version kept."""
    uri = str(tmp_path / "t")
    first = write_interval(uri, frame("2026-01-01", 10), partition={"ds": "2026-01-01"}, app_id="a/1", fingerprint=42)
    with caplog.at_level(logging.INFO, logger="pipelines.storage"):
        again = write_interval(uri, frame("2026-01-01", 10), partition={"ds": "2026-01-01"}, app_id="a/1",
                               fingerprint=42)
    assert again.skipped
    skips = [r for r in caplog.records if r.name.startswith("pipelines.storage") and "unchanged" in r.getMessage()]
    assert len(skips) == 1 and skips[0].levelno == logging.INFO
    line = skips[0].getMessage()
    assert uri in line and "2026-01-01" in line and f"version {first.version}" in line
    assert "0.0" not in line, "no row values in the log"

def test_schema_drift_takes_the_merging_path(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    write_interval(uri, frame("2026-01-01", 3), partition={"ds": "2026-01-01"}, app_id="a", fingerprint=1)
    drifted = frame("2026-01-02", 2).with_columns(extra=pl.lit("x"))
    write_interval(uri, drifted, partition={"ds": "2026-01-02"}, app_id="b", fingerprint=1)
    df = read_table(uri).collect()
    assert df.height == 5 and df.filter(pl.col("ds") == "2026-01-01")["extra"].null_count() == 3


def test_empty_interval_replaces_the_partition(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    write_interval(uri, frame("2026-01-01", 3), partition={"ds": "2026-01-01"}, app_id="a", fingerprint=1)
    ref = write_interval(uri, frame("2026-01-01", 0), partition={"ds": "2026-01-01"}, app_id="a", fingerprint=2)
    assert ref.rows == 0 and read_table(uri).collect().height == 0


def test_partition_is_added_when_missing_from_frame(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    write_interval(uri, pl.DataFrame({"id": [1, 2]}), partition={"ds": "2026-01-03"}, app_id="a", fingerprint=1)
    assert read_table(uri, partition={"ds": "2026-01-03"}).collect()["id"].to_list() == [1, 2]


def test_time_travel_and_history(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    first = write_interval(uri, frame("2026-01-01", 3), partition={"ds": "2026-01-01"}, app_id="a", fingerprint=1)
    second = write_interval(uri, frame("2026-01-01", 5), partition={"ds": "2026-01-01"}, app_id="a", fingerprint=2)
    assert second.version == first.version + 1
    assert read_table(uri, version=first.version).collect().height == 3
    assert read_table(uri).collect().height == 5
    assert [h["version"] for h in history(uri)][:2] == [second.version, first.version]


KILLED_WRITER = textwrap.dedent(
    """
    import sys, time, pyarrow as pa
    from pipelines.storage import write_interval

    uri, marker = sys.argv[1], sys.argv[2]
    schema = pa.schema([("id", pa.int64()), ("v", pa.float64()), ("ds", pa.string())])

    def batches():
        for i in range(1000):
            n = 50_000
            yield pa.record_batch([pa.array(range(i * n, (i + 1) * n)), pa.array([1.0] * n),
                                   pa.array(["2026-01-01"] * n)], schema=schema)
            if i == 20:
                open(marker, "w").write("mid-write")
            if i >= 20:
                time.sleep(0.05)

    reader = pa.RecordBatchReader.from_batches(schema, batches())
    write_interval(uri, reader, partition={"ds": "2026-01-01"}, app_id="killed", fingerprint=2)
    """
)


def test_killed_write_leaves_previous_version(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    write_interval(uri, frame("2026-01-01", 10), partition={"ds": "2026-01-01"}, app_id="killed", fingerprint=1)
    before = table_version(uri)
    marker = tmp_path / "marker"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, uri, str(marker)], env=os.environ.copy())
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert proc.poll() is None, "the writer ended before it was killed"
        assert time.monotonic() < deadline, "the writer never reached mid-write"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    # the marker is written from inside the batch generator that write_deltalake was consuming
    assert table_version(uri) == before
    df = read_table(uri).collect()
    assert df.height == 10 and df["id"].to_list() == list(range(10))
    # a retry after the kill lands exactly once
    ref = write_interval(uri, frame("2026-01-01", 12), partition={"ds": "2026-01-01"}, app_id="killed", fingerprint=2)
    assert ref.rows == 12 and read_table(uri).collect().height == 12


@pytest.mark.parametrize("root", ["relative/dir"])
def test_table_uri_layout(root: str) -> None:
    from pipelines.storage import table_uri

    uri = table_uri(root, "p", "eu-west", "raw", "t")
    assert uri.endswith("relative/dir/p/eu-west/raw/t")
    assert table_uri("s3://bucket/x/", "p", "eu-west", "raw", "t") == "s3://bucket/x/p/eu-west/raw/t"


def test_a_version_is_opened_once_in_a_block_and_never_moves(tmp_path: Path) -> None:
    """versions_once: the same (table, version) is one object for the block's reads; the table
    moving on does not move it; outside the block every open is its own."""
    from pipelines.storage import open_table, versions_once

    uri = str(tmp_path / "t")
    first = write_interval(uri, frame("2026-01-01", 3), partition={"ds": "2026-01-01"}, app_id="a/1", fingerprint=1)
    with versions_once():
        a = open_table(uri, version=first.version)
        later = write_interval(uri, frame("2026-01-02", 4), partition={"ds": "2026-01-02"}, app_id="a/2", fingerprint=1)
        b = open_table(uri, version=first.version)
        assert a is b and b is not None and b.version() == first.version
        assert open_table(uri, version=later.version) is not a
        assert open_table(uri) is not a  # the newest version is never served from the block
        assert open_table(str(tmp_path / "none"), version=0) is None
    assert open_table(uri, version=first.version) is not a


def test_a_version_written_or_looked_up_in_the_block_serves_its_reads_and_never_moves(tmp_path: Path) -> None:
    """Inside versions_once, the table a write committed through (or a lookup of the latest
    version opened) serves later reads of that version; later writes of the same table (a
    skip, a new partition, a rewrite) never move it, and reads of it give that version's rows."""
    from pipelines.storage import open_table, read_table, table_version, unchanged, versions_once

    uri = str(tmp_path / "t")
    with versions_once():
        v1 = write_interval(uri, frame("2026-01-01", 3), partition={"ds": "2026-01-01"}, app_id="a/1", fingerprint=1)
        served = open_table(uri, version=v1.version)
        assert served is open_table(uri, version=v1.version) and served is not None
        skipped = write_interval(uri, frame("2026-01-01", 3), partition={"ds": "2026-01-01"}, app_id="a/1",
                                 fingerprint=1)
        assert skipped.skipped and skipped.version == v1.version
        assert unchanged(uri, {"ds": "2026-01-01"}, "a/1", 1) is not None
        v2 = write_interval(uri, frame("2026-01-01", 5), partition={"ds": "2026-01-01"}, app_id="a/1", fingerprint=2)
        assert table_version(uri) == v2.version > v1.version
        v3 = write_interval(uri, frame("2026-01-02", 4), partition={"ds": "2026-01-02"}, app_id="a/2", fingerprint=1)
        # the object that served v1 is still at v1, and so are its reads
        assert served.version() == v1.version and open_table(uri, version=v1.version) is served
        assert read_table(uri, version=v1.version).collect().height == 3
        assert read_table(uri, version=v2.version).collect().height == 5
        assert read_table(uri, version=v3.version).collect().height == 5 + 4
        assert read_table(uri).collect().height == 9
        assert open_table(uri, version=v3.version) is not open_table(uri)  # the latest is never served from it
