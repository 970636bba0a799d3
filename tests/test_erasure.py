"""Erasure as an audited decision, on real Delta tables, through the CLI users run.

A history of 12 regions x 10 days (the issue's scale),
the 10th day recomputed under card features v2 while a consumer stays pinned to v1. Erasing a
card deletes its rows from every region's tables, records one row per region, re-certifies the
affected intervals as new generations; `lockstep maintain` then deletes every older file
holding the card's rows although a 30-day rollback window, a 1-hour minimum file age and the
pin would keep them, and the pinned consumer's read names the erasure."""

from __future__ import annotations

import json
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

from pipelines.airflow.audit import audit_rows
from pipelines.certify import active_certifications, decisions, read_certified
from pipelines.errors import CertificationError, StorageError
from pipelines.maintain import check_readable
from pipelines.runner import run_interval
from pipelines.spec import Interval, PipelineSpec, load_spec
from tests.conftest import small_spec_data
from tests.test_bad_input import cli, one_clear_line, versions

REGIONS = 12
DAYS = [f"2026-01-{d:02d}" for d in range(1, 11)]
NOW = datetime(2026, 1, 11, tzinfo=UTC)
LOOKBACK_DAYS = 7  # the card features' lookback in small_spec_data
ERASE_ALL = ["read", "run", "certify", "override", "rollback", "release", "erase", "approve"]


def spec_file(path: Path, version: str, regions: int = 3, **overrides: Any) -> Path:
    data = small_spec_data(regions=regions, rows=200, **overrides)
    data["validation"]["data_docs"] = False  # not what an erasure is about; it halves the history's cost
    data["features"] = [{**f, "version": version} if f["output"] == "card_features" else f for f in data["features"]]
    data["consumers"] = [{"name": "trained_on_v1", "tables": ["card_features"],
                          "feature_versions": {"card_features": "1"}}]
    data["maintenance"] = {"rollback_window": "30d", "min_file_age": "1h"}
    path.write_text(yaml.safe_dump(data))
    return path


def _history(base: Path, regions: int, days: list[str]) -> tuple[str, Path]:
    """``days`` certified under card features v1, the last one recomputed under v2."""
    lake = str(base / "lake")
    v1 = load_spec(spec_file(base / "v1.yaml", "1", regions))
    for day in days:
        assert run_interval(v1, Interval.for_date(day), root=lake).decision.certified  # type: ignore[union-attr]
    v2 = load_spec(spec_file(base / "v2.yaml", "2", regions))
    assert run_interval(v2, Interval.for_date(days[-1]), root=lake).decision.certified  # type: ignore[union-attr]
    return lake, base / "v2.yaml"


@pytest.fixture
def history(tmp_path: Path) -> tuple[str, Path]:
    """The issue's scale, for the one test that erases across all of it."""
    return _history(tmp_path, REGIONS, DAYS)


@pytest.fixture(scope="module")
def small_history(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """3 regions x 4 days, copied by the tests of the request, bad-input and recovery paths."""
    return _history(tmp_path_factory.mktemp("erasure"), 3, DAYS[:4])


@pytest.fixture
def lake(small_history: tuple[str, Path], tmp_path: Path) -> str:
    shutil.copytree(small_history[0], tmp_path / "lake")
    return str(tmp_path / "lake")


def tables(spec: PipelineSpec, root: str) -> dict[str, str]:
    """Every region's data table that exists: path -> uri."""
    out = {}
    for region in spec.regions:
        for t in spec.tables:
            for layer in {t.layer, "quarantine"}:
                uri = spec.table_uri(region, layer, t.name, root)
                if Path(uri, "_delta_log").is_dir():
                    out[f"{region}/{layer}/{t.name}"] = uri
    return out


def newest(uri: str) -> pl.DataFrame:
    return pl.read_delta(uri)


def card_rows(root: str, card: int) -> int:
    """Rows of ``card`` in every data file on disk (every version's, the removed ones excepted)."""
    n = 0
    for p in Path(root).rglob("*.parquet"):
        if "_lockstep" in p.parts or "_delta_log" in p.parts:
            continue
        df = pl.read_parquet(p)
        if "card_id" in df.columns:
            n += df.filter(pl.col("card_id") == card).height
    return n


def names(text: str, card: int | str) -> bool:
    """Whether ``text`` holds ``card`` as a whole token (not as digits inside a hex digest,
    a larger number or a timestamp), as the leak scan searches."""
    return re.search(rf"(?<![\w.]){re.escape(str(card))}(?![\w.])", text) is not None


LONG_CARD = pl.col("card_id") >= 10**9  # ids of ten digits and more: a short id is any count's digits


def busiest_card(spec: PipelineSpec, root: str) -> tuple[int, str]:
    """The card with most rows (of the ids of ten digits and more), and a region it has no rows in."""
    raw = {r: newest(spec.table_uri(r, "raw", "transactions", root)) for r in spec.regions}
    counts = pl.concat([df.select("card_id") for df in raw.values()]).filter(LONG_CARD).group_by(
        "card_id").len().sort(["len", "card_id"], descending=True)
    last = max(df["ds"].max() for df in raw.values())  # type: ignore[type-var]
    for card in counts["card_id"]:
        absent = [r for r, df in raw.items() if df.filter(pl.col("card_id") == card).is_empty()]
        if absent and any(df.filter((pl.col("card_id") == card) & (pl.col("ds") == last)).height
                          for df in raw.values()):
            return int(card), absent[0]
    raise AssertionError("no card fits")


def assert_evidence_as_if_never_delivered(spec: PipelineSpec, lake: str, keys: list[str], card: int) -> None:
    from pipelines.control.evidence import load
    from pipelines.evidence import profile_plan, totals_of

    ev = load(spec, keys, root=lake)
    for region in spec.regions:
        for t in spec.tables:
            if t.layer not in ("raw", "features"):
                continue
            for key in keys:
                prof = ev.newest(region, t.layer, t.name, key)
                assert prof is not None, (region, t.name, key)
                part = spec.interval_at(key).partition(t.partition_by)
                now = pl.read_delta(spec.table_uri(region, t.layer, t.name, lake), version=prof.version).filter(
                    *[pl.col(c).cast(pl.Utf8) == v for c, v in part.items()])
                assert now.filter(pl.col("card_id") == card).is_empty() if "card_id" in now.columns else True
                cols = profile_plan(spec, t)["totals"]
                expect = totals_of(now, cols)
                assert prof.rows == now.height and prof.totals == pytest.approx(expect), (region, t.name, key)
                if t.layer == "raw" and prof.source is not None:
                    q_uri = spec.table_uri(region, "quarantine", t.name, lake)
                    q = pl.read_delta(q_uri).filter(*[pl.col(c).cast(pl.Utf8) == v for c, v in part.items()]) \
                        if Path(q_uri, "_delta_log").is_dir() else now.clear()
                    delivered = totals_of(pl.concat([now, q.select(now.columns)]), cols)
                    assert prof.source == pytest.approx(delivered), (region, t.name, key, prof.source, delivered)


def test_erase_deletes_recertifies_and_maintain_removes_every_older_file(history: tuple[str, Path]) -> None:
    from pipelines.airflow.ui import render_erasures  # the Lockstep view's section
    from pipelines.erasure import erasure_status

    lake, path = history
    spec = load_spec(path)
    card, untouched = busiest_card(spec, lake)
    before = {p: newest(u) for p, u in tables(spec, lake).items()}
    versions_before = versions(Path(lake))
    held = {p: df.filter(pl.col("card_id") == card).height for p, df in before.items() if "card_id" in df.columns}
    assert sum(held.values()) > 0 and card_rows(lake, card) > 0
    pinned_region = next(r for r in spec.regions if before[f"{r}/raw/transactions"].filter(
        (pl.col("card_id") == card) & (pl.col("ds") == DAYS[-1])).height)
    assert read_certified(spec, "card_features", pinned_region, at=DAYS[-1], consumer="trained_on_v1", root=lake,
                          now=NOW).collect().height > 0  # the v1 generation of the 4th, kept by the pin

    res = cli("erase", str(path), "--column", "card_id", "--value", str(card), "--reason", "GDPR art. 17, ticket 81",
              "--root", lake, "--json")
    assert res.exit_code == 0, res.output
    done = json.loads(res.stdout)
    assert done["rows"] == sum(held.values())
    for p, n in held.items():
        region = p.split("/")[0]
        assert done["regions"][region][p]["rows"] == n

    # gone from the newest version of every table; every other row unchanged
    after = {p: newest(u) for p, u in tables(spec, lake).items()}
    for p, df in after.items():
        if "card_id" in df.columns:
            assert df.filter(pl.col("card_id") == card).is_empty(), p
        if "/raw/" in p or "/reference/" in p:
            keep = before[p].filter(pl.col("card_id") != card) if "card_id" in df.columns else before[p]
            key = "txn_id" if "txn_id" in df.columns else "merchant_id"
            assert df.sort(key, "ds").equals(keep.sort(key, "ds").select(df.columns)), p
    # a region the card never touched: its inputs not written, its features of the 4th (computed
    # under the spec's v2 already) the same rows (the 1st to 3rd are recomputed under v2 now)
    now_versions = versions(Path(lake))
    assert {k: v for k, v in now_versions.items() if k.split("/")[1] == untouched and "/features/" not in k} == {
        k: v for k, v in versions_before.items() if k.split("/")[1] == untouched and "/features/" not in k}
    p = f"{untouched}/features/card_features"
    last = [before[p].filter(pl.col("ds") == DAYS[-1]), after[p].filter(pl.col("ds") == DAYS[-1])]
    assert last[0].height and last[0].sort("txn_id").equals(last[1].sort("txn_id"))

    # every affected interval certified again, as a new generation now in force
    log = decisions(spec, root=lake)
    active = active_certifications(spec, root=lake, now=NOW)
    # the days the card was in, and those whose features' lookback reaches one of them
    held_days = sorted({d for df in before.values() if "card_id" in df.columns
                        for d in df.filter(pl.col("card_id") == card)["ds"].cast(pl.Utf8).to_list()})
    reach = {DAYS[j] for i, day in enumerate(DAYS) if day in held_days for j in range(i, min(i + LOOKBACK_DAYS + 1,
                                                                                             len(DAYS)))}
    assert sorted(done["intervals"]) == sorted(reach) and len(reach) > 1
    for key, d in done["intervals"].items():
        assert d["status"] == "certified" and active[key].generation_id == d["generation_id"]
        assert d["generation_id"] not in [x.generation_id for x in log if x.interval == key][:-1]
    # and their evidence is what a run that never had the rows publishes: every profile is that of
    # the partition as it is now (the card's rows absent), the raw tables' source totals included
    assert_evidence_as_if_never_delivered(spec, lake, sorted(done["intervals"]), card)

    # the older versions still hold the rows until maintain deletes their files (pin, window and age notwithstanding)
    assert card_rows(lake, card) > 0
    status = json.loads(cli("erase", str(path), "--status", "--root", lake, "--json").stdout)
    assert [s["state"] for s in status] == ["pending: awaiting `lockstep maintain`"]
    view = render_erasures(erasure_status(spec, root=lake))  # the view's section, from the same status
    assert done["erasure_id"] in view and "pending: awaiting" in view and not names(view, card)
    res = cli("maintain", str(path), "--root", lake, "--json")
    assert res.exit_code == 0, res.output
    assert card_rows(lake, card) == 0
    # the rows of other cards are all still there (only whole older files went)
    assert {p: newest(u).height for p, u in tables(spec, lake).items()} == {p: df.height for p, df in after.items()}

    status = json.loads(cli("erase", str(path), "--status", "--root", lake, "--json").stdout)
    assert len(status) == 1 and status[0]["state"] == "completed" and status[0]["seconds_to_removal"] > 0
    assert status[0]["erasure_id"] == done["erasure_id"] and status[0]["rows"] == done["rows"]
    view = render_erasures(erasure_status(spec, root=lake))
    assert "<td>completed</td>" in view and f"{status[0]['seconds_to_removal']:,.0f} s" in view

    # a read of a removed generation names the erasure
    with pytest.raises(CertificationError, match=done["erasure_id"]):
        read_certified(spec, "card_features", pinned_region, at=DAYS[-1], consumer="trained_on_v1", root=lake,
                       now=NOW).collect()
    erased = done["regions"][pinned_region][f"{pinned_region}/raw/transactions"]
    with pytest.raises(StorageError, match=done["erasure_id"]):
        check_readable(spec, erased["uri"], erased["version_before"])
    # what is in force reads clean
    clean = read_certified(spec, "card_features", pinned_region, at=DAYS[-1], root=lake).collect()
    assert clean.height > 0 and clean.filter(pl.col("card_id") == card).is_empty()

    # the audit trail: one erase row per region, the re-certification, the removal where rows went
    trail = [r for r in audit_rows(spec, root=lake) if r["log"] == "erasures"]
    assert [(r["kind"], r["status"]) for r in trail if r["kind"] == "erase"] == [("erase", r) for r in spec.regions]
    assert sum(r["kind"] == "recertify" for r in trail) == 1
    regions_with_rows = sorted({p.split("/")[0] for p, n in held.items() if n})
    assert sorted(r["status"] for r in trail if r["kind"] == "removal") == regions_with_rows
    assert all(r["actor"].startswith("local:") and r["decision_id"] == done["erasure_id"] for r in trail)
    assert all(r["reason"] == "GDPR art. 17, ticket 81" for r in trail if r["kind"] == "erase")
    assert not names(json.dumps(trail), card)


def governance() -> dict[str, Any]:
    return {"roles": {"Admin": {"regions": "*", "actions": ERASE_ALL}}, "approvals": 2, "approval_expiry": "1h",
            "allow_local": True}


def test_a_governed_erasure_needs_two_approvals_and_the_same_values(lake: str, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    path = spec_file(tmp_path / "governed.yaml", "2", governance=governance())
    spec = load_spec(path)
    raw = {r: newest(spec.table_uri(r, "raw", "transactions", lake)) for r in spec.regions}
    # a card with few rows on few days
    cards = pl.concat([df.select("card_id", "ds") for df in raw.values()]).filter(LONG_CARD).group_by("card_id").agg(
        days=pl.col("ds").n_unique(), rows=pl.len()).sort("days", "rows", "card_id")
    card, other = str(cards["card_id"][0]), str(cards["card_id"][1])
    args = ["erase", str(path), "--column", "card_id", "--value", card, "--reason", "breach: card withdrawn",
            "--root", lake]

    def as_(user: str, *a: str) -> Any:
        monkeypatch.setenv("LOCKSTEP_ACTOR", user)
        return cli(*a)

    before = versions(Path(lake))
    res = as_("alice", *args, "--json")
    assert res.exit_code == 0, res.output
    req = json.loads(res.stdout)
    assert req["action"] == "erase" and req["state"] == "pending" and not names(res.stdout, card)
    assert {k: v for k, v in versions(Path(lake)).items() if "_lockstep" not in k} == {
        k: v for k, v in before.items() if "_lockstep" not in k}, "a request deletes nothing"
    listed = json.loads(as_("alice", "erase", str(path), "--status", "--root", lake, "--json").stdout)
    assert [r["state"] for r in listed] == ["pending: request pending"]

    carry = [*args, "--request", req["request_id"]]
    one_clear_line(as_("alice", *carry), req["request_id"], "0 of 2 approval(s)")
    approve = ["approve", str(path), req["request_id"], "--reason", "verified the ticket", "--root", lake]
    one_clear_line(as_("alice", *approve), "cannot approve their own")
    assert as_("bob", *approve).exit_code == 0
    res = as_("carol", *approve, "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["state"] == "approved", res.output
    # the approved request erases exactly the values requested
    wrong = ["erase", str(path), "--column", "card_id", "--value", other, "--reason", "r", "--root", lake,
             "--request", req["request_id"]]
    one_clear_line(as_("alice", *wrong), "pass exactly the values requested")
    res = as_("alice", *carry, "--json")
    assert res.exit_code == 0, res.output
    done = json.loads(res.stdout)
    raw_rows = sum(t["rows"] for tabs in done["regions"].values() for p, t in tabs.items() if "/raw/" in p)
    assert raw_rows == int(cards["rows"][0]) and done["intervals"]
    assert all(d["status"] == "certified" for d in done["intervals"].values())
    one_clear_line(as_("alice", *carry), "carried out already", done["erasure_id"])

    trail = audit_rows(spec, root=lake)
    asked = [(r["kind"], r["actor"]) for r in trail if r["log"] == "approvals" and r["status"] == "erase"]
    assert asked == [("request", "local:alice"), ("approve", "local:bob"), ("approve", "local:carol")]
    erased = [r for r in trail if r["log"] == "erasures" and r["kind"] == "erase"]
    assert len(erased) == 3 and all(r["approvers"] == ["local:bob", "local:carol"] for r in erased)
    for df in (newest(spec.table_uri(r, "raw", "transactions", lake)) for r in spec.regions):
        assert df.filter(pl.col("card_id") == int(card)).is_empty()


def test_bad_input_is_one_clear_error_before_anything_is_written(lake: str, small_history: tuple[str, Path],
                                                                 tmp_path: Path) -> None:
    path = str(small_history[1])
    before = versions(Path(lake))
    base = ["erase", path, "--root", lake, "--reason", "r"]
    one_clear_line(cli(*base, "--column", "card_number", "--value", "1"), "--column 'card_number'",
                   "no raw table", "card_id")
    one_clear_line(cli(*base, "--column", "card_id"), "no values to erase")
    empty = tmp_path / "empty.txt"
    empty.write_text("# nobody\n\n")
    one_clear_line(cli(*base, "--column", "card_id", "--values-file", str(empty)), "no values to erase")
    one_clear_line(cli(*base, "--column", "card_id", "--values-file", str(tmp_path / "missing.txt")),
                   "--values-file", "missing.txt")
    one_clear_line(cli(*base, "--column", "card_id", "--value", "4000-12"), "'4000-12'", "card_id", "Int64")
    one_clear_line(cli("erase", path, "--root", lake, "--column", "card_id", "--value", "1"), "--reason")
    res = cli(*base, "--column", "card_number", "--value", "1", "--json")
    assert res.exit_code == 2 and "no raw table" in json.loads(res.stdout)["error"]["message"]
    assert versions(Path(lake)) == before, "nothing written"


def test_an_erasure_killed_after_a_rewrite_is_finished_by_running_it_again(lake: str, small_history: tuple[str, Path]
                                                                          ) -> None:
    """A run killed between a table's rewrite and its region's ``erase`` row: the rows are gone but
    the erasure log does not say so. Running the same erasure again finds the rewrite in the table's
    own log (tagged with the subject's digest), records it, and maintain removes the older files;
    the subject's value is in no commit of any table's log (no DELETE predicate holds it)."""
    from pipelines.erasure.apply import _delete
    from pipelines.erasure.subject import find_subject

    path = small_history[1]
    spec = load_spec(path)
    card, _ = busiest_card(spec, lake)
    subject = find_subject(spec, "card_id", [str(card)], root=lake)
    first = next(t for t in subject.targets if t.layer == "raw" and
                 newest(t.uri).filter(pl.col("card_id") == card).height)
    held = newest(first.uri).filter(pl.col("card_id") == card).height
    what, _ = _delete(spec, first, subject)  # what the killed run committed, and nothing after it
    assert what["rows"] == held and newest(first.uri).filter(pl.col("card_id") == card).is_empty()

    res = cli("erase", str(path), "--column", "card_id", "--value", str(card), "--reason", "re-run after a crash",
              "--root", lake, "--json")
    assert res.exit_code == 0, res.output
    done = json.loads(res.stdout)
    recorded = done["regions"][first.region][first.path]
    assert recorded["rows"] == held and recorded["version_after"] == what["version_after"], recorded
    assert cli("maintain", str(path), "--root", lake, "--json").exit_code == 0
    assert card_rows(lake, card) == 0
    for log in Path(lake).rglob("_delta_log/*.json"):
        for line in log.read_text().splitlines():
            commit = json.loads(line).get("commitInfo") or {}
            assert not names(json.dumps(commit.get("operationParameters", {})), card), log
