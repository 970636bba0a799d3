"""Time that exists, and every error one line.

An interval runs and certifies only once it has closed plus its sources' late allowance, by
the wall clock (``faketime`` moves the clock of a real ``lockstep`` process); one before the
spec's start_date or one no one can represent is refused with one line naming it and the
valid range, before anything is written. A full disk while Data Docs are written (a real
tmpfs) and a corrupt Delta data file end a command with one line too, and an unknown error
says it is internal (a traceback only with ``--debug``).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from pipelines.errors import IntervalError
from pipelines.runner import StepPayload, certify, run_interval, run_step
from pipelines.spec import Interval, load_spec
from tests.conftest import REPO, services_required, small_spec_data
from tests.test_bad_input import cli, one_clear_line

LOCKSTEP = str(Path(sys.executable).parent / "lockstep")
PAST = "2026-01-01"


def write_spec(tmp: Path, *, hourly: bool = False, allowance: str | None = None, name: str = "p.yaml") -> Path:
    data = small_spec_data(regions=2, rows=300)
    data["validation"]["suites_dir"] = str(REPO / "expectations")
    data["storage"]["root"] = str(tmp / "lake")
    if hourly:
        data["granularity"], data["schedule"] = "hour", "@hourly"
        for t in data["tables"]:
            t.pop("partition_by", None)  # the granularity's: ds, hour
    if allowance:
        data["sources"]["transactions"]["late_allowance"] = allowance
    path = tmp / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def wait_clear_of(step: timedelta, margin: float = 20.0) -> datetime:
    """Now, at least ``margin`` seconds before the current interval of length ``step`` ends
    (so an interval containing now cannot close while a test asks about it)."""
    while True:
        now = datetime.now(UTC)
        start = Interval.containing(now, "hour" if step == timedelta(hours=1) else "day").start
        if (start + step - now).total_seconds() > margin:
            return now
        time.sleep(margin)


def nothing_written(root: Path) -> None:
    assert not root.exists() or not any(root.rglob("_delta_log")), sorted(root.rglob("_delta_log"))


# --------------------------------------------------------------------------- intervals that have not closed
def test_future_day_is_refused_in_one_line_and_nothing_is_written(tmp_path: Path) -> None:
    spec = write_spec(tmp_path)
    line = one_clear_line(cli("run", str(spec), "--date", "2099-01-01"),
                          "2099-01-01", "has not closed yet", "2099-01-02 00:00 UTC", "--allow-open")
    assert "runs and certifications wait for it" in line
    nothing_written(tmp_path / "lake")
    one_clear_line(cli("certify", str(spec), "--date", "2099-01-01"), "2099-01-01", "has not closed yet")
    one_clear_line(cli("reconcile", str(spec), "--date", "2099-01-01"), "2099-01-01", "has not closed yet")
    one_clear_line(cli("check", str(spec), "--date", "2099-01-01"), "2099-01-01", "has not closed yet")
    one_clear_line(cli("backfill", str(spec), "--start", "2026-12-01", "--end", "2099-01-01"),
                   "2099-01-01", "has not closed yet")
    nothing_written(tmp_path / "lake")


def test_allow_open_runs_a_future_day(tmp_path: Path) -> None:
    spec = write_spec(tmp_path)
    out = cli("run", str(spec), "--date", "2099-01-01", "--allow-open", "--json")
    assert out.exit_code in (0, 1), out.output  # ran: certified (0) or blocked by its checks (1)
    summary = json.loads(out.stdout)
    assert summary["interval"] == "2099-01-01" and summary["decision"] is not None
    assert all(r["tables"] for r in summary["regions"].values())


def test_the_interval_containing_now_is_refused_by_run_certify_and_every_step(tmp_path: Path) -> None:
    now = wait_clear_of(timedelta(days=1))
    today = now.date().isoformat()
    spec_path = write_spec(tmp_path)
    one_clear_line(cli("run", str(spec_path), "--date", today), today, "has not closed yet")
    one_clear_line(cli("certify", str(spec_path), "--date", today), today, "has not closed yet")
    nothing_written(tmp_path / "lake")
    # the library the DAG and tests call: the same refusal, before anything is written
    spec = load_spec(spec_path)
    iv = spec.interval_at(now)
    with pytest.raises(IntervalError, match="has not closed yet") as err:
        run_interval(spec, iv)
    assert err.value.retryable  # an Airflow retry after the close can succeed
    with pytest.raises(IntervalError, match="has not closed yet"):
        certify(spec, iv)
    for step in ("ingest", "region", "reconcile", "gate"):
        payload = StepPayload(spec=str(spec_path), step=step, interval_start=iv.start, interval_end=iv.end,
                              region=spec.regions[0] if step in ("ingest", "region") else None)
        with pytest.raises(IntervalError, match="has not closed yet"):
            run_step(payload)
    nothing_written(tmp_path / "lake")


def test_the_hour_containing_now_is_refused_in_an_hourly_pipeline(tmp_path: Path) -> None:
    now = wait_clear_of(timedelta(hours=1))
    key = f"{now:%Y-%m-%dT%H}"
    spec = write_spec(tmp_path, hourly=True)
    one_clear_line(cli("run", str(spec), "--date", key), key, "has not closed yet")
    one_clear_line(cli("certify", str(spec), "--date", key), key, "has not closed yet")
    nothing_written(tmp_path / "lake")


# --------------------------------------------------------------------------- the wall clock, moved by faketime
def lockstep_at(clock: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``lockstep ARGS`` in a process whose wall clock starts at ``clock`` (UTC)."""
    if shutil.which("faketime") is None:
        if services_required():
            pytest.fail("faketime is not installed (apt-get install faketime)")
        pytest.skip("faketime is not installed (apt-get install faketime)")
    env = {k: v for k, v in os.environ.items() if k not in ("LOCKSTEP_DEBUG", "LOCKSTEP_ROOT")}
    env["TZ"] = "UTC"
    return subprocess.run(["faketime", "-m", "--exclude-monotonic", clock, LOCKSTEP, *args],
                          capture_output=True, text=True, timeout=600, env=env)


def one_line(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def test_a_day_runs_once_it_closed_plus_the_allowance_by_the_wall_clock(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, allowance="10m")
    day, lake = "2026-03-10", str(tmp_path / "lake")
    one_line(lockstep_at("2026-03-10 06:00:00", "run", str(spec), "--date", day, "--root", lake),
             "interval 2026-03-10 has not closed yet", "closes at 2026-03-11 00:00 UTC",
             "late allowance of 10m: 2026-03-11 00:10 UTC", "now 2026-03-10 06:00 UTC")
    # closed, but inside the late allowance: still waiting
    one_line(lockstep_at("2026-03-11 00:05:00", "certify", str(spec), "--date", day, "--root", lake),
             "has not closed yet", "late allowance of 10m")
    nothing_written(tmp_path / "lake")
    ran = lockstep_at("2026-03-11 00:10:00", "run", str(spec), "--date", day, "--root", lake, "--json")
    assert ran.returncode in (0, 1), ran.stderr
    summary = json.loads(ran.stdout)
    assert summary["interval"] == day and summary["decision"] is not None, summary


# --------------------------------------------------------------------------- time that does not exist
def test_a_date_no_interval_can_represent_is_one_line(tmp_path: Path) -> None:
    spec = write_spec(tmp_path)
    for cmd in ("run", "certify", "validate", "explain"):
        one_clear_line(cli(cmd, str(spec), "--date", "9999-12-31"),
                       "--date 9999-12-31", "no such interval", "from 2026-01-01 (its start_date)")
    one_clear_line(cli("run", str(spec), "--date", "9999-12-31T23"), "9999-12-31T23", "no such interval")
    one_clear_line(cli("backfill", str(spec), "--start", "2026-01-01", "--end", "9999-12-31"),
                   "9999-12-31", "no such interval")
    nothing_written(tmp_path / "lake")


def test_a_date_before_the_start_date_is_one_line(tmp_path: Path) -> None:
    spec = write_spec(tmp_path)
    for args in (("run", "--date", "2025-12-31"), ("run", "--date", "2025-12-31", "--allow-open"),
                 ("certify", "--date", "2025-12-31"), ("backfill", "--start", "2025-12-30", "--end", PAST)):
        one_clear_line(cli(args[0], str(spec), *args[1:]), "2025-12-31" if args[0] != "backfill" else "2025-12-30",
                       "before the pipeline's start_date 2026-01-01", "from 2026-01-01 (its start_date) to ")
    nothing_written(tmp_path / "lake")


@pytest.mark.parametrize("value, needles", [
    ("2026-02-30", ["--date: expected a date YYYY-MM-DD", "day is out of range for month"]),
    ("yesterday", ["--date: expected a date YYYY-MM-DD", "'yesterday'"]),
    ("2026-01-01T99", ["--date: expected an interval key"]),
])
def test_a_date_that_is_not_one_is_one_line(tmp_path: Path, value: str, needles: list[str]) -> None:
    one_clear_line(cli("run", str(write_spec(tmp_path)), "--date", value), *needles)


def test_backfill_dates_go_through_the_same_parser(tmp_path: Path) -> None:
    spec = write_spec(tmp_path)
    one_clear_line(cli("backfill", str(spec), "--start", "2026-13-01", "--end", PAST),
                   "--start: expected a date YYYY-MM-DD", "month must be in 1..12")
    one_clear_line(cli("backfill", str(spec), "--start", PAST, "--end", "soon"), "--end: expected a date")


# --------------------------------------------------------------------------- a full disk, a corrupt file
@pytest.fixture(scope="module")
def ran_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lake where one day ran (every table written, Data Docs too), to copy per test."""
    seed = tmp_path_factory.mktemp("ran")
    spec = write_spec(seed)
    out = cli("run", str(spec), "--date", PAST, "--root", str(seed / "lake"), "--no-gate")
    assert out.exit_code == 0, out.output
    return seed


def copy_lake(seed: Path, tmp: Path) -> Path:
    shutil.copytree(seed / "lake", tmp / "lake")
    return write_spec(tmp)


@contextmanager
def full_tmpfs(folder: Path, size: str, *, fill: bool = True) -> Iterator[Path]:
    """``folder`` on a real tmpfs of ``size``, filled to the last byte (``fill``); unmounted after."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill (needs root and CAP_SYS_ADMIN): {mounted.stderr.strip()}")
    try:
        if fill:
            try:
                with open(folder / "filler", "wb") as f:
                    while True:
                        f.write(b"\0" * 4096)
                        f.flush()
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
        yield folder
    finally:
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def test_a_full_disk_while_data_docs_are_written_is_one_line(ran_lake: Path, tmp_path: Path) -> None:
    spec = copy_lake(ran_lake, tmp_path)
    first = load_spec(spec).regions[0]  # each region's site is under its prefix; the first validated fills the disk
    docs = tmp_path / "lake" / "fraud_features" / "_lockstep" / "regions" / first / "data_docs"
    shutil.rmtree(docs)
    with full_tmpfs(docs, "64k"):  # the tables and check results have room; the Data Docs none
        out = cli("validate", str(spec), "--date", PAST)
        line = one_clear_line(out, "no space left on device writing", str(docs), "free space, then re-run",
                              "lockstep validate")
    assert "os error" not in line


def test_a_full_disk_under_the_tables_is_one_line(tmp_path: Path) -> None:
    spec = write_spec(tmp_path)
    with full_tmpfs(tmp_path / "small", "40k", fill=False) as small:  # room for a few files of a run
        out = cli("run", str(spec), "--date", PAST, "--root", str(small / "lake"), "--no-gate")
        one_clear_line(out, f"no space left on device writing {small / 'lake'}", "free space, then re-run",
                       "lockstep run")



@pytest.mark.parametrize("damage", ["truncated", "garbled"])
def test_a_corrupt_data_file_is_one_line(ran_lake: Path, tmp_path: Path, damage: str) -> None:
    spec = copy_lake(ran_lake, tmp_path)
    [data_file] = (tmp_path / "lake" / "fraud_features" / "eu-west" / "raw" / "transactions").rglob("*.parquet")
    raw = bytearray(data_file.read_bytes())
    if damage == "truncated":  # deltalake's reader panics (a PanicException, a BaseException)
        data_file.write_bytes(bytes(raw[:100]))
    else:  # the compressed pages overwritten: polars raises its ComputeError
        raw[200:400] = b"\0" * 200
        data_file.write_bytes(bytes(raw))
    out = cli("validate", str(spec), "--date", PAST, "--root", str(tmp_path / "lake"))
    one_clear_line(out, "a Delta table or one of its data files is corrupt",
                   f"lockstep verify {spec} --date {PAST}", f"lockstep run {spec} --date {PAST}", "--force")


def test_an_unknown_error_is_one_internal_line_and_a_traceback_only_with_debug(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = cli("generate", str(tmp_path / "out"), "--format", "xyz", "--rows", "5")
    assert out.exit_code == 1, out.output
    assert out.exception is None or isinstance(out.exception, SystemExit), repr(out.exception)
    [line] = out.stderr.strip().splitlines()
    assert line == "error: internal error: ValueError: unknown format 'xyz' (re-run with --debug for the traceback)"
    monkeypatch.setenv("LOCKSTEP_DEBUG", "")  # --debug sets it to 1: monkeypatch unsets it after the test
    debug = cli("--debug", "generate", str(tmp_path / "out"), "--format", "xyz", "--rows", "5")
    assert isinstance(debug.exception, ValueError)
