"""Region queues in the DAG factory: each region's tasks on its queue, reconcile and gate on
the control queue, one DAG; and a relative root refused under a distributed executor."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipelines.airflow import build_dag
from pipelines.airflow.queues import check_storage_for_executor, executor_names, region_groups
from pipelines.errors import SpecError
from pipelines.spec import load_spec
from tests.conftest import REPO, small_spec_data

QUEUES = {"default": "regional", "control": "control",
          "regions": {"eu-west": "eu", "eu-central": "eu", "us-east": "us"}}


def _spec_file(tmp_path: Path, regions: int = 5, **airflow: object) -> Path:
    data = small_spec_data(regions)
    data["airflow"].update(airflow)
    data["storage"]["root"] = str(tmp_path / "lake")
    data["validation"]["suites_dir"] = str(REPO / "expectations")
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_each_region_group_runs_on_its_queue_and_the_gate_on_control(tmp_path: Path) -> None:
    dag = build_dag(_spec_file(tmp_path, queues=QUEUES))
    queues = {t.task_id: t.queue for t in dag.tasks}
    # eu-west, eu-central -> eu; us-east -> us; eu-north, eu-south (unmapped) -> the default
    assert queues == {
        **{f"region_eu.{s}": "eu" for s in ("ingest", "validate_inputs", "transform", "validate")},
        **{f"region_us.{s}": "us" for s in ("ingest", "validate_inputs", "transform", "validate")},
        **{f"region_regional.{s}": "regional" for s in ("ingest", "validate_inputs", "transform", "validate")},
        "reconcile": "control", "gate": "control",
    }
    assert dag.get_task("reconcile").upstream_task_ids == {
        "region_eu.validate", "region_us.validate", "region_regional.validate"}
    groups = {g.group_id: g.regions for g in region_groups(load_spec(_spec_file(tmp_path, queues=QUEUES)))}
    assert groups == {"region_eu": ("eu-west", "eu-central"), "region_us": ("us-east",),
                      "region_regional": ("eu-north", "eu-south")}


def test_without_queues_the_dag_keeps_one_mapped_group_on_the_default_queue(tmp_path: Path) -> None:
    dag = build_dag(_spec_file(tmp_path, task_granularity="region"))
    assert {t.task_id: t.queue for t in dag.tasks} == {
        "region.region": "default", "reconcile": "default", "gate": "default"}
    one = build_dag(_spec_file(tmp_path, task_granularity="region", queues={"default": "q1"}))
    assert {t.task_id: t.queue for t in one.tasks} == {"region.region": "q1", "reconcile": "q1", "gate": "q1"}


def test_a_queue_for_an_unknown_region_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="airflow.queues.regions names regions the pipeline does not have: xx-yy"):
        build_dag(_spec_file(tmp_path, queues={"regions": {"xx-yy": "q"}}))


def test_relative_root_under_celery_is_an_error_at_parse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _spec_file(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["storage"]["root"] = "./lockstep-data"
    path.write_text(yaml.safe_dump(data))
    monkeypatch.delenv("LOCKSTEP_ROOT", raising=False)
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "CeleryExecutor")
    with pytest.raises(SpecError, match=r"storage.root './lockstep-data' is a relative local path, but "
                                        r"Airflow runs tasks with CeleryExecutor"):
        build_dag(path)
    monkeypatch.setenv("LOCKSTEP_ROOT", "rel/root")
    with pytest.raises(SpecError, match="LOCKSTEP_ROOT 'rel/root' is a relative local path"):
        build_dag(path)
    monkeypatch.setenv("LOCKSTEP_ROOT", "s3://bucket/lockstep")
    build_dag(path)  # an object store: fine
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "LocalExecutor")
    monkeypatch.setenv("LOCKSTEP_ROOT", "rel/root")
    build_dag(path)  # one machine: the spec's folder is the same for every component


def test_executor_names_read_aliases_and_lists() -> None:
    assert executor_names("LocalExecutor") == ["LocalExecutor"]
    assert executor_names("CeleryExecutor,my:custom.module.KubernetesExecutor") == [
        "CeleryExecutor", "KubernetesExecutor"]
    spec = load_spec(REPO / "dags" / "fraud_features.yaml")
    check_storage_for_executor(spec, ["LocalExecutor"])
    with pytest.raises(SpecError):
        check_storage_for_executor(spec, ["CeleryExecutor"])  # '../lockstep-data'


def test_airflow_components_get_the_root_the_cli_resolves(tmp_path: Path) -> None:
    """``lockstep airflow up --root data`` runs components in the Airflow home: the root they
    receive is the absolute folder the CLI, started in the same directory, reads."""
    from pipelines.airflow.embedded import absolute_root

    assert absolute_root({"LOCKSTEP_ROOT": "data"}, tmp_path) == {"LOCKSTEP_ROOT": str(tmp_path / "data")}
    assert absolute_root({"LOCKSTEP_ROOT": str(tmp_path / "abs")}) == {}
    assert absolute_root({"LOCKSTEP_ROOT": "s3://lake/x"}) == {}
    assert absolute_root({}) == {}
    spec = load_spec(REPO / "dags" / "fraud_features.yaml")  # no override: the spec's folder decides
    assert spec.root() == str(REPO / "lockstep-data") or "LOCKSTEP_ROOT" in __import__("os").environ
