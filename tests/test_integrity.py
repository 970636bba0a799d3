"""Files verified at read (real Delta tables on tmp_path, no mocks).

* a write records the sha256 and size of the partition's data files as the Delta log names
  them (the fast path from the bytes it put, the schema-merge path by reading them back; a
  skipped re-write reads nothing: its hashes are in the profile published before); a profile carries them through the evidence store, and validation's
  quarantine writes (the quarantine table and the cleaned table) carry theirs to the gate;
* :func:`verified_scan` equals ``read_table`` on an untouched partition (columns, types, rows);
* a data file replaced by another parquet file of the same size, by one of another size, or
  deleted, is refused naming the table, the Delta version and the file (no pyo3 panic escapes);
* ``lockstep verify`` on a lake certified by the runner reports every table ok, then, after a
  file is replaced, the file, exiting 2.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml
from polars.testing import assert_frame_equal

from pipelines.control import evidence as store
from pipelines.control.evidence import publish_write
from pipelines.errors import CertificationError
from pipelines.evidence import Profile
from pipelines.integrity import verified_scan, verify_files
from pipelines.spec import Interval, load_spec, parse_spec
from pipelines.storage import (
    object_path,
    open_table,
    partition_file_hashes,
    partition_sizes,
    read_table,
    write_interval,
)
from tests.conftest import REPO, make_spec, small_spec_data

DS = "2026-01-01"
PART = {"ds": DS}


def frame(n: int = 1_000, start: int = 0) -> pl.DataFrame:
    return pl.DataFrame({
        "id": pl.Series(range(start, start + n), dtype=pl.Int64),
        "amount": [float(i) * 1.5 for i in range(n)],
        "name": [f"n{i % 97:03d}" for i in range(n)],
        "at": [datetime(2026, 1, 1, i % 24, tzinfo=UTC) for i in range(n)],
    })


def on_disk(uri: str, version: int, partition: dict[str, str]) -> dict[str, dict[str, Any]]:
    """sha256 and size of the partition's files as they lie on disk (read with plain open)."""
    dt = open_table(uri, version=version)
    assert dt is not None
    out = {}
    for p in partition_sizes(dt, partition):
        data = (Path(uri) / object_path(p)).read_bytes()
        out[p] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    return out


def file_of(uri: str, version: int, partition: dict[str, str] = PART) -> tuple[str, Path]:
    dt = open_table(uri, version=version)
    assert dt is not None
    (logged,) = partition_sizes(dt, partition)
    return logged, Path(uri) / object_path(logged)


def forge_same_size(path: Path, change: Callable[[pl.DataFrame], pl.DataFrame]) -> None:
    """Replace the parquet file at ``path`` by another valid parquet file of exactly the same
    size holding ``change``d rows (padded through the file's key-value metadata)."""
    target = path.stat().st_size
    forged = change(pl.read_parquet(path))

    def encode(pad: int) -> bytes:
        buf = io.BytesIO()
        forged.write_parquet(buf, compression="zstd", compression_level=22, statistics=False,
                             metadata={"pad": "x" * pad} if pad else None)
        return buf.getvalue()

    bare = len(encode(0))
    assert bare < target - 40, f"the forged rows do not fit in {target} bytes ({bare})"
    for pad in range(max(0, target - bare - 64), target - bare + 1):
        data = encode(pad)
        if len(data) == target:
            path.write_bytes(data)
            assert path.stat().st_size == target
            return
    raise AssertionError("no padding gives the same size")


def refused(call: Callable[[], Any], *needles: str) -> str:
    with pytest.raises(CertificationError) as info:
        call()
    msg = str(info.value)
    assert info.value.retryable is False
    for needle in needles:
        assert needle in msg, msg
    assert "lockstep rollback" in msg and "lockstep certify" in msg, msg
    return msg


# --------------------------------------------------------------------------- hashes at write
def test_fast_path_hashes_the_bytes_it_put(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    ref = write_interval(uri, frame(), partition=PART, app_id="t/1", fingerprint=1)
    assert len(ref.files) == 1 and ref.files == on_disk(uri, ref.version, PART)
    (entry,) = ref.files.values()
    assert set(entry) == {"sha256", "size"} and len(entry["sha256"]) == 64
    assert json.loads(json.dumps(ref.to_dict()))["files"] == ref.files  # XCom-able
    other = write_interval(uri, frame(10), partition={"ds": "2026-01-02"}, app_id="t/2", fingerprint=1)
    assert other.files == on_disk(uri, other.version, {"ds": "2026-01-02"}) and other.files.keys() != ref.files.keys()


def test_schema_merge_path_hashes_the_files_it_left_and_a_skip_reads_none(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    write_interval(uri, frame(), partition=PART, app_id="t/1", fingerprint=1)
    merged = write_interval(uri, frame().with_columns(extra=pl.lit("x")), partition={"ds": "2026-01-02"},
                            app_id="t/2", fingerprint=1)  # a new column: write_deltalake with a schema merge
    assert merged.files and merged.files == on_disk(uri, merged.version, {"ds": "2026-01-02"})
    skipped = write_interval(uri, frame().with_columns(extra=pl.lit("x")), partition={"ds": "2026-01-02"},
                             app_id="t/2", fingerprint=1)
    assert skipped.skipped and skipped.files == {}  # a skip costs a log lookup: no file is read
    assert partition_file_hashes(uri, skipped.version, {"ds": "2026-01-02"}) == merged.files
    emptied = write_interval(uri, frame(0), partition=PART, app_id="t/1", fingerprint=2)
    assert emptied.rows == 0 and emptied.files == {}


def test_a_profile_round_trips_its_files(tmp_path: Path) -> None:
    spec = make_spec(regions=2, storage={"root": str(tmp_path / "lake")})
    t = spec.table("transactions")
    day = Interval.for_date(DS)
    region = spec.regions[0]
    from pipelines.sources.synthetic import transactions

    rows = transactions(region, day.start.date(), regions=spec.regions, rows=200, merchants=50)
    uri = spec.table_uri(region, t.layer, t.name)
    ref = write_interval(uri, rows, partition=day.partition(t.partition_by), app_id="p/1", fingerprint=1)
    published = publish_write(spec, region, t, t.layer, day, rows, ref)
    assert published.files == ref.files and ref.files
    loaded = store.load(spec, [day.key], region=region, table=t.name).newest(region, t.layer, t.name, day.key)
    assert loaded is not None and loaded.files == ref.files
    assert json.loads(published.summary_json())["files"] == ref.files
    old = {"pipeline": spec.name, "region": region, "layer": "raw", "table": t.name, "interval": day.key,
           "version": 1, "plan_hash": "x", "summary": json.dumps({**json.loads(published.summary_json()), "files": None})}
    assert Profile.decode({**old, "summary": old["summary"].replace(', "files": null', "")}).files == {}


def test_quarantine_and_cleaned_versions_carry_their_files(tmp_path: Path) -> None:
    from pipelines.certify import active_certifications
    from pipelines.runner import run_interval

    data = small_spec_data(regions=2, rows=1000)
    data["sources"]["transactions"]["faults"] = [{"kind": "duplicates", "regions": ["eu-central"], "dates": [DS]}]
    data["storage"] = {"root": str(tmp_path / "lake")}
    spec = parse_spec(data, "integrity-test").with_path(REPO / "dags" / "fraud_features.yaml")
    day = Interval.for_date(DS)
    assert run_interval(spec, day).decision.certified  # type: ignore[union-attr]
    decision = active_certifications(spec)[day.key]
    ev = store.load(spec, [day.key], region="eu-central", table="transactions")
    for layer in ("raw", "quarantine"):
        member = f"eu-central/{layer}/transactions"
        version = decision.generation.members[member]
        profile = ev.at("eu-central", layer, "transactions", day.key, version)
        uri = spec.table_uri("eu-central", layer, "transactions")
        assert profile is not None and profile.files == on_disk(uri, version, PART) != {}
        assert decision.bindings["files"][member] == profile.files
        got = verified_scan(uri, version, PART, profile.files, what=member).collect()
        assert_frame_equal(got, read_table(uri, version=version, partition=PART).collect())


# --------------------------------------------------------------------------- verified scan
def test_verified_scan_equals_read_table(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    first = write_interval(uri, frame(), partition=PART, app_id="t/1", fingerprint=1)
    merged = write_interval(uri, frame(50).with_columns(extra=pl.lit(2.5)), partition={"ds": "2026-01-02"},
                            app_id="t/2", fingerprint=1)
    empty = write_interval(uri, frame(0), partition={"ds": "2026-01-03"}, app_id="t/3", fingerprint=1)
    for ref, part in ((first, PART), (merged, {"ds": "2026-01-02"}), (empty, {"ds": "2026-01-03"})):
        got = verified_scan(uri, ref.version, part, ref.files, what="eu-west/raw/t").collect()
        want = read_table(uri, version=ref.version, partition=part).collect()
        assert got.schema == want.schema
        assert_frame_equal(got.sort("id"), want.sort("id"))
    # an older partition read at a later version: the merged column reads null, as read_table's
    got = verified_scan(uri, merged.version, PART, first.files, what="eu-west/raw/t").collect()
    want = read_table(uri, version=merged.version, partition=PART).collect()
    assert got.schema == want.schema and "extra" in got.columns
    assert_frame_equal(got.sort("id"), want.sort("id"))
    assert got.height == 1_000 and empty.files == {}
    stats = verify_files(uri, merged.version, PART, first.files, what="eu-west/raw/t")
    assert stats["files"] == 1 and stats["bytes"] == next(iter(first.files.values()))["size"]


def test_a_same_size_replacement_is_refused(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    ref = write_interval(uri, frame(), partition=PART, app_id="t/1", fingerprint=1)
    logged, path = file_of(uri, ref.version)
    forge_same_size(path, lambda df: df.with_columns(
        amount=pl.when(pl.col("id") == 7).then(pl.lit(1e9)).otherwise(pl.col("amount"))))
    assert os.path.getsize(path) == ref.files[logged]["size"]
    plain = read_table(uri, version=ref.version, partition=PART).collect()  # Delta itself serves the forgery
    assert plain.filter(pl.col("id") == 7)["amount"].item() == 1e9
    refused(lambda: verified_scan(uri, ref.version, PART, ref.files, what="eu-west/raw/transactions"),
            "eu-west/raw/transactions", f"Delta version {ref.version}", logged, "sha256")
    refused(lambda: verify_files(uri, ref.version, PART, ref.files, what="eu-west/raw/transactions"),
            "eu-west/raw/transactions", logged)


def test_another_size_and_a_deleted_file_are_refused_without_a_panic(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    ref = write_interval(uri, frame(), partition=PART, app_id="t/1", fingerprint=1)
    logged, path = file_of(uri, ref.version)
    frame(2).write_parquet(path)  # smaller than the log says: read_table panics (a BaseException)
    refused(lambda: verified_scan(uri, ref.version, PART, ref.files, what="eu-west/raw/t"),
            "eu-west/raw/t", f"Delta version {ref.version}", logged, "bytes, certified")
    frame(5_000).write_parquet(path)  # larger
    refused(lambda: verified_scan(uri, ref.version, PART, ref.files, what="eu-west/raw/t"), logged)
    path.unlink()
    refused(lambda: verified_scan(uri, ref.version, PART, ref.files, what="eu-west/raw/t"), logged, "missing")


def test_unbound_and_unrecorded_files_are_refused(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    ref = write_interval(uri, frame(), partition=PART, app_id="t/1", fingerprint=1)
    logged, _ = file_of(uri, ref.version)
    refused(lambda: verified_scan(uri, ref.version, PART, {}, what="eu-west/raw/t"), "no file hashes recorded")
    other = {"ds=2026-01-01/part-00000-other-c000.zstd.parquet": {"sha256": "0" * 64, "size": 1}}
    msg = refused(lambda: verify_files(uri, ref.version, PART, other, what="eu-west/raw/t"))
    assert "not in the Delta log" in msg and f"{logged} is in the Delta log but not bound" in msg


# --------------------------------------------------------------------------- lockstep verify
def cli(*args: str) -> Any:
    from typer.testing import CliRunner

    from pipelines.cli import _register, app

    _register()
    return CliRunner().invoke(app, list(args))


def test_lockstep_verify_reports_ok_then_the_replaced_file(tmp_path: Path) -> None:
    from pipelines.certify import active_certifications
    from pipelines.runner import run_interval

    data = small_spec_data(regions=2, rows=300)
    data["validation"]["suites_dir"] = str(REPO / "expectations")
    data["storage"] = {"root": str(tmp_path / "lake")}
    spec_path = tmp_path / "p.yaml"
    spec_path.write_text(yaml.safe_dump(data, sort_keys=False))
    spec = load_spec(str(spec_path))
    day = Interval.for_date(DS)
    assert run_interval(spec, day).decision.certified  # type: ignore[union-attr]
    decision = active_certifications(spec)[day.key]
    assert set(decision.bindings["files"]) >= set(decision.generation.members) - {
        m for m in decision.generation.members if "/quarantine/" in m}

    ok = cli("verify", str(spec_path), "--date", DS, "--json")
    assert ok.exit_code == 0, ok.output
    report = json.loads(ok.output)
    assert report["ok"] and report["generation_id"] == decision.generation_id
    assert {r["member"] for r in report["members"]} == set(decision.generation.members)
    assert all(r["ok"] and r["files"] >= 1 and r["bytes"] > 0 for r in report["members"])

    region = spec.regions[1]
    member = f"{region}/features/card_features"
    version = decision.generation.members[member]
    uri = spec.table_uri(region, "features", "card_features")
    logged, path = file_of(uri, version, day.partition(spec.table("card_features").partition_by))
    forge_same_size(path, lambda df: df.reverse())  # the same rows, in another order: other bytes

    bad = cli("verify", str(spec_path), "--date", DS, "--json")
    assert bad.exit_code == 2, bad.output
    rows = {r["member"]: r for r in json.loads(bad.output[:bad.output.rindex("}") + 1])["members"]}
    assert not rows[member]["ok"] and logged in rows[member]["error"] and f"Delta version {version}" in rows[member]["error"]
    assert all(r["ok"] for m, r in rows.items() if m != member)

    text = cli("verify", str(spec_path), "--at", decision.generation_id)
    assert text.exit_code == 2 and "failed verification" in text.output and "lockstep rollback" in text.output
    assert cli("verify", str(spec_path), "--region", spec.regions[0]).exit_code == 0
