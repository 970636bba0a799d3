"""``maintain`` on real Delta tables: compaction, checkpoints, and a vacuum that keeps every
version the rollback window, the certification in force or an override needs."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from deltalake import DeltaTable

from pipelines.certify import active_certifications, decisions, read_certified, rollback
from pipelines.errors import StorageError
from pipelines.maintain import check_readable, maintain, pipeline_tables
from pipelines.runner import run_interval
from pipelines.spec import Interval, PipelineSpec
from tests.conftest import REPO, make_spec

DAYS = [f"2026-01-0{d}" for d in range(1, 7)]


def spec_() -> PipelineSpec:
    return make_spec(regions=2, rows=200, maintenance={"rollback_window": "2d", "min_file_age": "0s"})


def data_files(root: str) -> int:
    return sum(1 for p in Path(root).rglob("*.parquet") if "_delta_log" not in p.parts)


def certified_rows(spec: PipelineSpec, root: str, at: str) -> dict[str, Any]:
    out = {}
    for region in spec.regions:
        df = read_certified(spec, "card_features", region, at=at, root=root).collect()
        out[region] = (df.height, round(float(df["amount"].sum()), 2))
    return out


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Six days, each run twice (the second forced: every partition rewritten)."""
    root = str(tmp_path_factory.mktemp("maint") / "lake")
    spec = spec_()
    for ds in DAYS:
        run_interval(spec, Interval.for_date(ds), root=root)
        run_interval(spec, Interval.for_date(ds), root=root, force=True)
    return root


@pytest.fixture
def root(seeded: str, tmp_path: Path) -> str:
    shutil.copytree(seeded, tmp_path / "lake")
    return str(tmp_path / "lake")


def test_maintain_keeps_the_window_and_removes_the_rest(root: str) -> None:
    spec = spec_()
    log = decisions(spec, root=root)
    assert all(d.certified for d in log), [d.reasons for d in log if not d.certified]
    in_window = [d for d in log if d.interval >= "2026-01-04"]
    outside = [d for d in log if d.interval < "2026-01-04"]
    in_force = {k: certified_rows(spec, root, k) for k in active_certifications(spec, root=root)}
    first_run_day5 = next(d for d in log if d.interval == "2026-01-05")  # superseded by the forced re-run
    files_before = data_files(root)
    check_results_files = len(DeltaTable(f"{root}/{spec.name}/_lockstep/check_results").file_uris())

    dry = maintain(spec, root=root, dry_run=True)
    assert data_files(root) == files_before and dry.summary()["files_removable"] > 0

    report = maintain(spec, root=root)
    s = report.summary()
    assert s["files_removed"] > 0 and s["files_compacted"] > 0
    assert data_files(root) < files_before, "the file count falls"
    assert len(DeltaTable(f"{root}/{spec.name}/_lockstep/check_results").file_uris()) < check_results_files

    # every table reads at its newest version; every generation in the window and in force still reads
    for uri in pipeline_tables(spec, root=root):
        DeltaTable(uri).to_pyarrow_table()
    for key, rows in in_force.items():
        assert certified_rows(spec, root, key) == rows, key
    for d in in_window:
        for member, version in d.generation.members.items():
            region, layer, table = member.split("/", 2)
            check_readable(spec, f"{root}/{spec.name}/{region}/{layer}/{table}", version)
    # a version outside the window is gone, and reading it says so
    old = outside[0]
    region, layer, table = next(iter(old.generation.members)).split("/", 2)
    uri = f"{root}/{spec.name}/{region}/{layer}/{table}"
    with pytest.raises(StorageError, match=r"version \d+ was removed by `lockstep maintain`.*rollback window"):
        check_readable(spec, uri, old.generation.members[f"{region}/{layer}/{table}"])
    with pytest.raises(Exception):  # noqa: B017 - its files are gone: no read can return its rows
        pl.scan_delta(uri, version=old.generation.members[f"{region}/{layer}/{table}"]).collect()

    # rollback to a generation inside the window (superseded, not in force) still works
    expected = {}
    for r in spec.regions:
        v = first_run_day5.generation.version(r, "features", "card_features")
        df = pl.scan_delta(f"{root}/{spec.name}/{r}/features/card_features", version=v).filter(
            pl.col("ds") == "2026-01-05").collect()
        expected[r] = (df.height, round(float(df["amount"].sum()), 2))
    rollback(spec, first_run_day5.generation_id, reason="test: rollback inside the window", root=root)
    assert certified_rows(spec, root, first_run_day5.generation_id) == expected


def test_maintain_twice_is_stable(root: str) -> None:
    spec = spec_()
    maintain(spec, root=root)
    files = data_files(root)
    again = maintain(spec, root=root)
    regional = [t for t in again.tables if "/_lockstep/" not in t.uri]
    assert sum(t.files_removed + t.files_compacted for t in regional) == 0, "nothing left to do in the regions"
    assert data_files(root) <= files + len(again.tables), "at most the maintenance log grows"


KILLER = """
import sys, time
from pathlib import Path
from pipelines.maintain import maintain
from tests.test_maintain import spec_
root, step, nth, marker = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
seen = []
def on_step(uri, s):
    if s == step:
        seen.append(uri)
        if len(seen) == nth:
            marker.write_text(uri)
            time.sleep(float(sys.argv[5]))
maintain(spec_(), root=root, on_step=on_step)
"""


@pytest.mark.parametrize("step, nth, pause", [("compact", 3, 60), ("vacuum", 5, 60), ("checkpoint", 9, 0.05),
                                              ("vacuum", 2, 0.02)])
def test_maintain_killed_midway_leaves_every_table_readable(root: str, tmp_path: Path, step: str, nth: int,
                                                            pause: float) -> None:
    spec = spec_()
    in_force = {k: certified_rows(spec, root, k) for k in active_certifications(spec, root=root)}
    marker = tmp_path / "marker"
    proc = subprocess.Popen([sys.executable, "-c", KILLER, root, step, str(nth), str(marker), str(pause)],
                            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    deadline = time.time() + 120
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(pause / 2 if pause < 1 else 0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert marker.exists(), "the maintenance run reached the kill point"
    for uri in pipeline_tables(spec, root=root):
        DeltaTable(uri).to_pyarrow_table()
    for key, rows in in_force.items():
        assert certified_rows(spec, root, key) == rows, key
    maintain(spec, root=root)  # and the next run completes
    for key, rows in in_force.items():
        assert certified_rows(spec, root, key) == rows, key


def test_maintain_command(root: str, tmp_path: Path) -> None:
    import json

    import yaml
    from typer.testing import CliRunner

    from pipelines.cli import _register, app
    from tests.conftest import small_spec_data

    _register()
    data = small_spec_data(regions=2, rows=200, maintenance={"rollback_window": "2d", "min_file_age": "0s"})
    data["validation"]["suites_dir"] = str(REPO / "expectations")
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    dry = CliRunner().invoke(app, ["maintain", str(path), "--root", root, "--dry-run", "--json"])
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout)["files_removable"] > 0
    out = CliRunner().invoke(app, ["maintain", str(path), "--root", root])
    assert out.exit_code == 0, out.output
    assert "removed" in out.stdout
