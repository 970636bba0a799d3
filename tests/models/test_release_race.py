"""Promotions and rollbacks racing scoring that runs in separate processes (multiprocessing,
spawn: one scorer per region, each scoring its region's intervals in order through
:func:`~pipelines.models.score_interval`): no interval is ever scored with two releases, and
every (region, interval) is scored exactly once.

Three regions: enough for three scorer processes and the promoter to race for the release log
(a claim by one region must bind the others), few enough that certifying 96 intervals stays
the cheap part. The promotion gate's thresholds are loose here (PSI and AUC are tested on
their own in test_releases.py): this is about the release mechanics under concurrency."""

from __future__ import annotations

import json
import multiprocessing
import time
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from pipelines.errors import CertificationError
from pipelines.models import (
    claims,
    promote,
    read_log,
    read_scores,
    release_in_force,
    releases,
    rollback,
    scores_uri,
    shadow_score,
    train,
)
from pipelines.runner import run_interval
from pipelines.spec import PipelineSpec, load_spec
from pipelines.storage import open_table
from tests.models.conftest import quarter_data, quarters, write_spec

REGIONS = 3
MODELS = {"window": 3, "seed": 3, "promotion": {"window": 4, "max_psi": 1000.0, "max_auc_drop": 1.0}}


def _ready(progress: str | None, index: int, deadline: float) -> None:
    """Wait until the certifier says interval ``index`` is certified (a file it rewrites after
    each interval: polling it costs nothing, where polling the decision log costs a read)."""
    while progress is not None and (not Path(progress).exists() or int(Path(progress).read_text() or -1) < index):
        if time.monotonic() > deadline:
            raise TimeoutError(f"interval {index} never certified")
        time.sleep(0.05)


def _scorer(spec_file: str, root: str, region: str, keys: list[str], out: str, progress: str | None) -> None:
    """One region's scorer process: score each interval once, in order, as soon as it is
    certified and a release is in force for it; record what it scored with."""
    from pipelines.models import score_interval

    spec = load_spec(spec_file)
    done = []
    for index, key in enumerate(keys):
        deadline = time.monotonic() + 900
        _ready(progress, index, deadline)
        while True:
            try:
                ref = score_interval(spec, key, region, root=root)
                break
            except CertificationError:  # not certified yet, or no release in force yet: wait for it
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        done.append({"interval": key, "rows": ref.rows, "skipped": ref.skipped})
    Path(out).write_text(json.dumps(done))


def _start_scorers(spec_file: Path, root: str, spec: PipelineSpec, keys: list[str], tmp: Path,
                   progress: Path | None = None) -> list[tuple[multiprocessing.process.BaseProcess, Path]]:
    ctx = multiprocessing.get_context("spawn")
    procs = []
    for region in spec.regions:
        out = tmp / f"scored-{region}.json"
        p = ctx.Process(target=_scorer, args=(str(spec_file), root, region, keys, str(out), progress and str(progress)), daemon=True)
        p.start()
        procs.append((p, out))
    return procs


def _join(procs: list[tuple[multiprocessing.process.BaseProcess, Path]], timeout: float = 600) -> None:
    for p, out in procs:
        p.join(timeout)
        assert p.exitcode == 0 and out.exists(), f"scorer {p.name} ended with {p.exitcode}"


def _candidate(spec: PipelineSpec, root: str, until: str, shadow_on: str | None) -> str:
    trained = train(spec, until=until, root=root)
    for region in spec.regions if shadow_on else []:
        shadow_score(spec, trained.version, shadow_on, region, root=root)
    return trained.version


def _assert_one_release_per_interval(spec: PipelineSpec, root: str, keys: list[str]) -> pl.DataFrame:
    """Every (region, interval) scored exactly once, every interval with one release_id in
    every region: its claim's, which is also the release in force for it in the final log."""
    frames = []
    for region in spec.regions:
        scored = read_scores(spec, region, root=root)
        assert scored["txn_id"].is_unique().all(), region
        assert sorted(scored["interval"].unique()) == keys, region
        dt = open_table(scores_uri(spec, region, root), spec.region_options(region))
        assert dt is not None
        writes = [c for c in dt.history() if c.get("operation") not in ("CREATE TABLE", None)]
        assert len(writes) == len(keys), (region, len(writes))  # one write per interval, never a second
        frames.append(scored.select("interval", "region", "release_id", "model_version"))
    scored = pl.concat(frames)
    mixed = scored.group_by("interval").agg(pl.col("release_id").n_unique().alias("n")).filter(pl.col("n") > 1)
    assert mixed.height == 0, mixed
    log = read_log(spec, root=root)
    claimed = claims(log)
    per_interval = dict(scored.unique(["interval", "release_id"]).select("interval", "release_id").iter_rows())
    for key in keys:
        assert per_interval[key] == claimed[key].release_id
        in_force = release_in_force(spec, key, log=log)
        assert in_force is not None and in_force.release_id == per_interval[key], key
    return scored


def _setup(tmp_path: Path) -> tuple[PipelineSpec, Path, str]:
    spec_file = write_spec(quarter_data(REGIONS, models=MODELS), tmp_path / "fraud_features.yaml")
    return load_spec(spec_file), spec_file, str(tmp_path / "lake")


@pytest.mark.slow
def test_promotions_racing_scorers_never_mix_releases(tmp_path: Path) -> None:
    """Twelve certified intervals, scored by three processes at once while the promoter
    promotes and rolls back back to back, each from the next unscored interval."""
    spec, spec_file, root = _setup(tmp_path)
    keys = quarters(spec, 12)
    for key in keys:
        assert run_interval(spec, spec.interval_at(key), root=root).decision.certified  # type: ignore[union-attr]
    first = _candidate(spec, root, keys[2], keys[-1])
    second = _candidate(spec, root, keys[3], None)  # shadow-scored when promoted, against the release then in force
    promote(spec, first, effective_from=keys[0], why="first", root=root)
    procs = _start_scorers(spec_file, root, spec, keys, tmp_path)
    decided = 0
    while any(p.is_alive() for p, _ in procs) and decided < 8:
        if claims(read_log(spec, root=root)):  # scoring has begun: race it
            if decided % 3 == 2:
                rollback(spec, why="race: roll back", root=root)
            else:  # shadow-scored against the release in force, then promoted from the next unscored interval
                version = second if decided % 2 == 0 else first
                for region in spec.regions:
                    shadow_score(spec, version, keys[-1], region, root=root)
                promote(spec, version, why=f"race {decided}", root=root)
            decided += 1
        time.sleep(0.05)
    _join(procs)
    scored = _assert_one_release_per_interval(spec, root, keys)
    used = scored.group_by("release_id").agg(pl.col("interval").n_unique()).sort("release_id").rows()
    print(f"\nrace: {decided} release decisions while three processes scored 12 intervals; intervals per release: {used}")
    assert decided >= 2 and len(used) >= 2, (decided, used)


@pytest.mark.slow
def test_soak_96_quarter_hours_three_promotions_and_a_rollback_while_scoring(tmp_path: Path) -> None:
    """96 consecutive 15-minute intervals certified one after another while three scorer
    processes score each as soon as it is certified; a retrained model promoted at intervals
    20, 40 and 60 (each from the next unscored interval) and a rollback at 80."""
    spec, spec_file, root = _setup(tmp_path)
    keys = quarters(spec, 96)
    t0 = time.perf_counter()
    certify_s = 0.0
    progress = tmp_path / "certified.txt"  # the index of the newest interval certified (once a release exists)
    procs = _start_scorers(spec_file, root, spec, keys, tmp_path, progress)
    events: list[dict[str, Any]] = []
    for i, key in enumerate(keys):
        t = time.perf_counter()
        decision = run_interval(spec, spec.interval_at(key), root=root).decision
        certify_s += time.perf_counter() - t
        assert decision is not None and decision.certified, (key, decision and decision.reasons[:2])
        if i == 3:  # the first release, from the first interval (nothing scored yet)
            release = promote(spec, _candidate(spec, root, key, key), effective_from=keys[0], why="first", root=root)
            events.append({"at": key, "kind": "promote", "release": release.release_id, "from": release.effective_from})
        elif i in (20, 40, 60):
            release = promote(spec, _candidate(spec, root, key, key), why=f"retrained at {key}", root=root)
            events.append({"at": key, "kind": "promote", "release": release.release_id, "from": release.effective_from})
        elif i == 80:
            release = rollback(spec, why="the newest model misbehaves", root=root)
            events.append({"at": key, "kind": "rollback", "release": release.release_id, "to": release.target,
                           "from": release.effective_from})
        if i >= 3:
            progress.write_text(str(i))
    _join(procs)
    total = time.perf_counter() - t0
    scored = _assert_one_release_per_interval(spec, root, keys)
    in_force = releases(spec, root=root)
    assert [r.kind for r in in_force] == ["promote"] * 4 + ["rollback"]
    assert set(scored["release_id"].unique()) == {r.release_id for r in in_force}  # each took effect on some interval
    print(f"\nrelease soak: {len(keys)} intervals x {REGIONS} regions in {total:.0f}s (certifying {certify_s:.0f}s of "
          f"it, scorers alongside); {json.dumps(events)}")
