"""The model DAGs through Airflow's own ``dag.test()``: the release DAG trains on certified data,
shadow-scores every region, evaluates and promotes (one Asset event); the scoring DAG scores a
certified interval with the release in force for it, and refuses, saying so, when none is.

Real Airflow (a DagBag of the DAG files, the task runner, XCom, outlets), real Delta tables
written by the runner, a real MLflow SQLite registry; three regions, small data."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.models import evaluations, read_log, release_in_force, releases
from pipelines.runner import run_interval
from pipelines.spec import Interval, PipelineSpec, load_spec
from tests.airflow.test_dag_run import asset_events
from tests.conftest import small_spec_data

DAYS = ["2026-01-01", "2026-01-02", "2026-01-03"]
NEXT = "2026-01-04"


@pytest.fixture(scope="module")
def airflow_db() -> None:
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)


def write_spec(folder: Path, name: str, **airflow: Any) -> Path:
    data = small_spec_data(regions=3, rows=600, name=name)
    data["storage"] = {"root": str(folder / "lake")}
    data["airflow"].update(retries=0, **airflow)
    data["models"] = {"name": f"{name}_model", "window": 2, "seed": 3}
    data["models"]["promotion"] = {"window": 1, "max_auc_drop": 1.0, "max_psi": 10.0}  # a window these days hold
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def dag_of(spec_path: Path, builder: str, dag_id: str) -> Any:
    """A few-line DAG file for the spec in the session's dags folder, parsed by a real DagBag."""
    from airflow.dag_processing.dagbag import DagBag

    dag_file = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / f"{dag_id}.py"
    dag_file.write_text(f"from pipelines.airflow import {builder}\n\n"
                        f"dag = {builder}({str(spec_path)!r}, dag_id={dag_id!r})\n")
    bag = DagBag(str(dag_file))
    assert bag.import_errors == {}
    return bag.dags[dag_id]


def failure(dr: Any, task_id: str) -> str:
    ti = next(ti for ti in dr.get_task_instances() if ti.task_id == task_id)
    assert ti.state == "failed", (task_id, ti.state)
    return str(ti.state)


def returned(dr: Any, task_id: str) -> list[Any]:
    """What the task's instances (every map index) returned."""
    return [ti.xcom_pull(task_ids=task_id, map_indexes=ti.map_index)
            for ti in dr.get_task_instances() if ti.task_id == task_id]


@pytest.fixture(scope="module")
def lake(airflow_db: None, tmp_path_factory: pytest.TempPathFactory) -> PipelineSpec:
    spec = load_spec(write_spec(tmp_path_factory.mktemp("release-dag"), "af_model"))
    for day in DAYS:
        decision = run_interval(spec, Interval.for_date(day)).decision
        assert decision is not None and decision.certified
    return spec


@pytest.mark.slow
def test_scoring_refuses_when_no_release_is_in_force(lake: PipelineSpec, capfd: pytest.CaptureFixture[str]) -> None:
    dag = dag_of(Path(str(lake.path)), "build_scoring_dag", "af_model_scoring_none")
    dr = dag.test(logical_date=datetime(2026, 1, 3, 1, tzinfo=UTC), run_conf={"interval": DAYS[1]})
    assert dr.state == "failed"
    failure(dr, "release_in_force")
    out = capfd.readouterr()
    assert (f"af_model: no release in force for {DAYS[1]}: nothing scores it until a model is released "
            "(the af_model_release DAG") in out.out + out.err
    from pipelines.errors import CertificationError
    from pipelines.release_flow import scoring_interval

    with pytest.raises(CertificationError, match=f"no release in force for {DAYS[1]}: nothing scores it"):
        scoring_interval(lake, DAYS[1])


@pytest.mark.slow
def test_release_dag_promotes_and_scoring_uses_the_release_in_force(lake: PipelineSpec) -> None:
    release_dag = dag_of(Path(str(lake.path)), "build_release_dag", "af_model_release")
    assert {t.task_id for t in release_dag.tasks} == {"plan", "train", "shadow", "evaluate", "promote"}
    dr = release_dag.test(logical_date=datetime(2026, 1, 4, tzinfo=UTC), run_conf={"why": "first model"})
    assert dr.state == "success"
    log = releases(lake)
    assert len(log) == 1
    first = log[0]
    # evaluated on the newest certified day, trained on the two before it, in force from the next
    assert first.effective_from == NEXT and first.why == "first model" and first.kind == "promote"
    assert set(first.generations) == set(DAYS[:2])
    events = asset_events("lockstep://af_model/release")
    assert [e["extra"]["release_id"] for e in events] == [first.release_id]
    [evaluation] = returned(dr, "evaluate")
    assert set(evaluation["regions"]) == set(lake.regions) and evaluation["reasons"] == []
    shadows = returned(dr, "shadow")
    assert sorted(s["region"] for s in shadows) == sorted(lake.regions)
    assert all(s["interval"] == DAYS[-1] and s["rows"] > 0 and 0 < s["score_mean"] < 1 for s in shadows), shadows
    # the shadow tasks returned their metrics; the control task `evaluate` recorded them, once each
    recorded = evaluations(lake, version=first.model_version)
    assert sorted(recorded["score_hash"].to_list()) == sorted(s["score_hash"] for s in shadows)

    # the next day certifies; the scoring DAG scores it with the release in force for it
    assert run_interval(lake, Interval.for_date(NEXT)).decision.certified  # type: ignore[union-attr]
    scoring = dag_of(Path(str(lake.path)), "build_scoring_dag", "af_model_scoring")
    dr = scoring.test(logical_date=datetime(2026, 1, 5, tzinfo=UTC), run_conf={"interval": NEXT})
    assert dr.state == "success"
    [summary] = returned(dr, "scored")
    assert summary["interval"] == NEXT and summary["release_id"] == first.release_id
    assert set(summary["regions"]) == set(lake.regions) and summary["rows"] > 0
    assert {tuple(r["release_id"]) for r in summary["regions"].values()} == {(first.release_id,)}
    # claimed once, by the control task for every region (region tasks only read the log)
    [claimed] = [r for r in read_log(lake) if r.kind == "claim" and r.interval == NEXT]
    assert claimed.region == "" and claimed.release_id == first.release_id and claimed.who.startswith("airflow:")
    # a second release run evaluates on NEXT, shadow-scores beside the release in force, promotes from the 5th
    dr = release_dag.test(logical_date=datetime(2026, 1, 5, 1, tzinfo=UTC), run_conf={"why": "retrained"})
    assert dr.state == "success"
    second = releases(lake)[-1]
    assert second.effective_from == "2026-01-05" and release_in_force(lake, NEXT) == first
    shadows = returned(dr, "shadow")
    assert all(s["interval"] == NEXT and s["baseline_release"] == first.release_id and s["psi"] >= 0
               for s in shadows), shadows


def test_region_groups_map_shadow_and_scoring_on_their_queues(tmp_path: Path) -> None:
    """Each region group's shadow and scoring tasks run on the group's queue; plan, train,
    evaluate, promote and the scoring's bookends on the control queue."""
    from pipelines.airflow import build_release_dag, build_scoring_dag

    path = write_spec(tmp_path, "af_queues", queues={"default": "us", "control": "control",
                                                     "regions": {"eu-west": "eu", "eu-central": "eu"}})
    release = build_release_dag(path)
    queues = {t.task_id: t.queue for t in release.tasks}
    assert queues == {"plan": "control", "train": "control", "shadow_eu": "eu", "shadow_us": "us",
                      "evaluate": "control", "promote": "control"}
    assert [o.uri for o in release.get_task("promote").outlets] == ["lockstep://af_queues/release"]
    assert release.dag_id == "af_queues_release" and release.schedule is None
    scoring = build_scoring_dag(path)
    assert {t.task_id: t.queue for t in scoring.tasks} == {
        "release_in_force": "control", "score_eu": "eu", "score_us": "us", "scored": "control"}
    assert "lockstep://af_queues/certified" in str(scoring.timetable.asset_condition)


def test_a_spec_without_models_has_no_model_dags(tmp_path: Path) -> None:
    from pipelines.airflow import build_release_dag
    from pipelines.errors import SpecError

    data = small_spec_data(regions=2, name="no_models")
    data.pop("models")
    path = tmp_path / "no_models.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SpecError, match="no_models: build_release_dag needs the spec's models: section"):
        build_release_dag(path)
