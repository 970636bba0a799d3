"""The interval index the gate reads (pipelines/control/index.py): used when it verifies,
and never trusted blindly. Each attack - an index left stale by a re-publish, one deleted,
one corrupt, one from another run, one copied from another region, one naming a table that
was replaced since - is detected, names why, and the gate decides exactly as it does from
the regions' tables."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from pipelines.control.index import INDEX_DIR, index_name, read_index, refresh_once
from pipelines.control.results import CheckResult
from pipelines.reconcile import run_checks
from pipelines.reconcile.context import Context
from pipelines.runner import certify
from pipelines.spec import PipelineSpec
from pipelines.storage import region_prefix
from tests.reconcile.conftest import DAY, REGIONS, feats_frame, put, ref_frame, tiny_spec

CHECKS = {"drift": [{"table": "feats", "columns": {"amount": {"psi": 0.2, "ks": 0.1}}}],
          "parity": [{"table": "ref", "keys": ["k"]}]}


@pytest.fixture(autouse=True)
def _index_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests say when the index is off (LOCKSTEP_NO_INDEX), whatever the suite's run set."""
    monkeypatch.delenv("LOCKSTEP_NO_INDEX", raising=False)


def index_file(spec: PipelineSpec, root: str, region: str) -> Path:
    return Path(region_prefix(spec.control_root(root), spec.name, region)) / INDEX_DIR / index_name(DAY.key)


def fill(spec: PipelineSpec, root: str, shift: float = 0.0, regions: list[str] = REGIONS) -> None:
    for r in regions:
        put(spec, root, r, "reference", "ref", ref_frame())
        put(spec, root, r, "features", "feats", feats_frame(r, shift=shift if r == "r2" else 0.0))


def verdicts(results: list[CheckResult]) -> list[tuple[Any, ...]]:
    """What a decision is made of (the snapshot's bookkeeping of bytes and misses left out)."""
    snap = next(r for r in results if r.check_id == "generation.snapshot")
    return [(r.check_id, r.region, r.table, r.success, r.policy, r.message, r.observed) for r in results] + [
        (snap.details["generation"], snap.details.get("bindings"))]


def with_and_without(spec: PipelineSpec, root: str, monkeypatch: pytest.MonkeyPatch
                     ) -> tuple[list[CheckResult], list[CheckResult]]:
    indexed = run_checks(spec, DAY, root=root, run_id="r")
    monkeypatch.setenv("LOCKSTEP_NO_INDEX", "1")
    tables = run_checks(spec, DAY, root=root, run_id="r")
    monkeypatch.delenv("LOCKSTEP_NO_INDEX")
    assert tables[0].details["index_misses"] == {}  # (no index read at all)
    return indexed, tables


def test_the_gate_reads_every_region_from_its_index_and_decides_as_from_the_tables(
        root: str, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = tiny_spec(CHECKS)
    fill(spec, root, shift=3.0)  # r2 drifts: a block, so a failing verdict is compared too
    ctx = Context.build(spec, DAY, root=root)
    assert ctx.index_misses == {}
    full = Context.build(spec, DAY, root=root, use_index=False)
    assert ctx.generation.members == full.generation.members and ctx.generation.members
    assert {m: p.summary_json() for m, p in ctx.profiles.items()} == {m: p.summary_json() for m, p in full.profiles.items()}
    indexed, tables = with_and_without(spec, root, monkeypatch)
    assert indexed[0].details["index_misses"] == {}
    assert verdicts(indexed) == verdicts(tables)
    assert any(not r.success and r.check_id.startswith("drift.") for r in indexed)
    # a parity descent fetches the keyed digest from the table at the version the index named
    assert all(p.keyed is not None for m, p in ctx.profiles.items() if m.endswith("/ref"))


def test_an_index_left_stale_by_a_republish_is_not_used(root: str, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = tiny_spec(CHECKS)
    fill(spec, root)
    old = index_file(spec, root, "r2").read_bytes()
    ref = put(spec, root, "r2", "features", "feats", feats_frame("r2", shift=3.0))  # a new version, a new profile
    index_file(spec, root, "r2").write_bytes(old)  # the index as it was before
    indexed, tables = with_and_without(spec, root, monkeypatch)
    misses = indexed[0].details["index_misses"]
    assert list(misses) == [f"r2/{DAY.key}"] and "stale" in misses[f"r2/{DAY.key}"], misses
    assert "published again after the index" in misses[f"r2/{DAY.key}"]
    assert verdicts(indexed) == verdicts(tables)
    assert indexed[0].details["generation"]["r2/features/feats"] == ref.version  # the new version, not the indexed one
    assert any(not r.success and r.region == "r2" and r.check_id.startswith("drift.") for r in indexed)


def test_a_step_writes_its_index_once_at_its_end_from_what_it_published_last(root: str) -> None:
    """Inside a step (refresh_once) each publish only notes the refresh: the index is written
    when the step ends, bound to the versions the step left, never to a mid-step one."""
    spec = tiny_spec(CHECKS)
    fill(spec, root, regions=["r1", "r3"])
    with refresh_once():
        put(spec, root, "r2", "reference", "ref", ref_frame())
        assert not index_file(spec, root, "r2").exists()  # noted, not written yet
        ref = put(spec, root, "r2", "features", "feats", feats_frame("r2"))
        assert not index_file(spec, root, "r2").exists()
    entry, why = read_index(spec.control_root(root), spec.name, "r2", DAY.key, spec.control_options())
    assert entry is not None, why
    assert sorted(entry.evidence["table"]) == ["feats", "ref"]  # both publishes, in one index
    assert entry.evidence.filter(entry.evidence["table"] == "feats")["version"].to_list() == [ref.version]


def test_a_step_killed_after_a_publish_leaves_a_stale_index_the_gate_does_not_use(
        root: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The attack on deferring the refresh: a step that publishes and then dies never writes
    its index; the one left from before names a version the step's commit moved past, so the
    gate reads the region's tables and decides from what was published."""
    spec = tiny_spec(CHECKS)
    fill(spec, root)
    before = index_file(spec, root, "r2").read_bytes()
    with pytest.raises(RuntimeError, match="killed"), refresh_once():
        ref = put(spec, root, "r2", "features", "feats", feats_frame("r2", shift=3.0))
        raise RuntimeError("killed after its publish")
    assert index_file(spec, root, "r2").read_bytes() == before  # nothing written by the failed step
    indexed, tables = with_and_without(spec, root, monkeypatch)
    misses = indexed[0].details["index_misses"]
    assert list(misses) == [f"r2/{DAY.key}"] and "published again after the index" in misses[f"r2/{DAY.key}"]
    assert verdicts(indexed) == verdicts(tables)
    assert indexed[0].details["generation"]["r2/features/feats"] == ref.version
    assert any(not r.success and r.region == "r2" and r.check_id.startswith("drift.") for r in indexed)


def test_an_index_stays_in_use_while_the_region_publishes_other_intervals(
        root: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The region's tables hold every interval: a later interval's publishes move their versions
    but not this interval's partition, so its index is still used (each later commit read and
    seen to change another partition); a commit to this interval is not skipped over."""
    from pipelines.control import index as index_module
    from pipelines.spec import Interval

    spec = tiny_spec(CHECKS)
    fill(spec, root)
    nxt = Interval.for_date("2026-01-02")
    put(spec, root, "r1", "features", "feats", feats_frame("r1", interval=nxt), nxt)
    put(spec, root, "r1", "reference", "ref", ref_frame(), nxt)
    indexed, tables = with_and_without(spec, root, monkeypatch)
    assert indexed[0].details["index_misses"] == {}
    assert verdicts(indexed) == verdicts(tables)
    monkeypatch.setattr(index_module, "FOLLOW_COMMITS", 1)  # fewer followed than were committed: a miss
    entry, why = read_index(spec.control_root(root), spec.name, "r1", DAY.key)
    assert entry is None and "more than 1 commits since version" in why, why


def test_a_deleted_index_falls_back_to_the_tables(root: str, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = tiny_spec(CHECKS)
    fill(spec, root)
    index_file(spec, root, "r1").unlink()
    indexed, tables = with_and_without(spec, root, monkeypatch)
    misses = indexed[0].details["index_misses"]
    assert list(misses) == [f"r1/{DAY.key}"] and misses[f"r1/{DAY.key}"].endswith("no index"), misses
    assert verdicts(indexed) == verdicts(tables)
    decision = certify(spec, DAY, root=root, allow_open=True)
    assert decision.certified, decision.reasons


@pytest.mark.parametrize("damage", ["body", "header", "truncated", "empty"])
def test_a_corrupt_index_is_detected(root: str, monkeypatch: pytest.MonkeyPatch, damage: str) -> None:
    spec = tiny_spec(CHECKS)
    fill(spec, root)
    f = index_file(spec, root, "r3")
    data = bytearray(f.read_bytes())
    if damage == "body":
        data[-10] ^= 0xFF
    elif damage == "header":
        data[data.index(b'"version": ') + len(b'"version": ')] = ord("7")  # another version named, hash intact
    elif damage == "truncated":
        data = data[: len(data) // 2]
    else:
        data = bytearray()
    f.write_bytes(bytes(data))
    entry, why = read_index(spec.control_root(root), spec.name, "r3", DAY.key)
    assert entry is None and why, why
    indexed, tables = with_and_without(spec, root, monkeypatch)
    assert list(indexed[0].details["index_misses"]) == [f"r3/{DAY.key}"]
    assert verdicts(indexed) == verdicts(tables)


def test_an_index_from_another_run_or_place_is_not_used(root: str, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = tiny_spec(CHECKS)
    fill(spec, root)
    first_run = index_file(spec, root, "r1").read_bytes()
    # another run re-publishes r1 (a retry of the interval): the first run's index is put back
    put(spec, root, "r1", "features", "feats", feats_frame("r1", seed=7))
    index_file(spec, root, "r1").write_bytes(first_run)
    # and r3's place holds a copy of r2's (current) index
    shutil.copyfile(index_file(spec, root, "r2"), index_file(spec, root, "r3"))
    indexed, tables = with_and_without(spec, root, monkeypatch)
    misses = indexed[0].details["index_misses"]
    assert sorted(misses) == [f"r1/{DAY.key}", f"r3/{DAY.key}"], misses
    assert "stale" in misses[f"r1/{DAY.key}"]
    assert f"indexes tiny/r2/{DAY.key}, not tiny/r3/{DAY.key}" in misses[f"r3/{DAY.key}"]
    assert verdicts(indexed) == verdicts(tables)


def test_an_index_of_a_table_replaced_since_is_not_used(root: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The evidence table deleted and published again reaches the same version numbers: the
    index names the commit it read, so the same number with another commit is a miss."""
    spec = tiny_spec(CHECKS)
    fill(spec, root)
    old = index_file(spec, root, "r2").read_bytes()
    shutil.rmtree(Path(region_prefix(spec.control_root(root), spec.name, "r2")) / "evidence")
    fill(spec, root, shift=3.0, regions=["r2"])
    index_file(spec, root, "r2").write_bytes(old)
    indexed, tables = with_and_without(spec, root, monkeypatch)
    misses = indexed[0].details["index_misses"]
    assert list(misses) == [f"r2/{DAY.key}"] and "not the one indexed" in misses[f"r2/{DAY.key}"], misses
    assert verdicts(indexed) == verdicts(tables)
    assert any(not r.success and r.region == "r2" and r.check_id.startswith("drift.") for r in indexed)


def test_an_index_written_before_its_check_results_moved_is_not_used(
        root: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The region's check results are bound too: a failure recorded after the index (here
    written straight to the table, as a writer whose index refresh failed would leave it)
    makes the index stale, and the gate reads the failure from the table."""
    from pipelines.control.tables import REGION_RESULTS_TABLE

    spec = tiny_spec(CHECKS)
    fill(spec, root)
    row = CheckResult(stage="delivery", check_id="delivery.transform", check_type="delivery", region="r1", table="*",
                      policy="block", success=False, message="transform failed: boom").to_row(spec.name, DAY.key, "r")
    REGION_RESULTS_TABLE.append(REGION_RESULTS_TABLE.region_uri(spec.control_root(root), spec.name, "r1"), [row])
    indexed, tables = with_and_without(spec, root, monkeypatch)
    misses = indexed[0].details["index_misses"]
    assert list(misses) == [f"r1/{DAY.key}"] and "stale" in misses[f"r1/{DAY.key}"], misses
    assert verdicts(indexed) == verdicts(tables)


def test_a_long_window_reads_each_regions_evidence_in_one_scan_with_the_same_rows(root: str) -> None:
    """More intervals than scan_evidence reads partition by partition: one scan per region of
    the partitions asked for, the same rows as reading them one by one (another interval's
    rows and another table's left out)."""
    from pipelines.control.evidence import PER_PARTITION_SCANS, scan_evidence
    from pipelines.spec import Interval

    spec = tiny_spec(CHECKS)
    days = [Interval.for_date(f"2026-01-{d:02d}") for d in range(1, PER_PARTITION_SCANS + 4)]
    for iv in days:
        put(spec, root, "r1", "features", "feats", feats_frame("r1", n=50, interval=iv), interval=iv)
        put(spec, root, "r1", "reference", "ref", ref_frame(), interval=iv)
    asked = [iv.key for iv in days[1:]]  # the first left out
    assert len(asked) > PER_PARTITION_SCANS
    one, _ = scan_evidence(spec, asked, root=root, regions=["r1"], table="feats")
    each = [scan_evidence(spec, [k], root=root, regions=["r1"], table="feats")[0] for k in asked]
    order = ["interval", "version", "recorded_at"]
    expected = pl.concat(each).sort(order)
    assert one.sort(order).equals(expected) and one.height == len(asked)
    assert set(one["table"]) == {"feats"} and days[0].key not in set(one["interval"])
