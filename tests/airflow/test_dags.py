"""DAG integrity, as Astro's template does it: every file in dags/ imports cleanly through a
real DagBag, has tags and retries >= 2; and parsing costs neither polars nor GX."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

DAG_FILES = sorted(p.name for p in (REPO / "dags").glob("*.py"))


@pytest.fixture(scope="module")
def dagbag():  # type: ignore[no-untyped-def]
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(str(REPO / "dags"))


def test_no_import_errors(dagbag) -> None:  # type: ignore[no-untyped-def]
    assert dagbag.import_errors == {}
    assert {"fraud_features", "fraud_model_scoring"} <= set(dagbag.dag_ids)


def test_dagbag_loads_exactly_the_dag_files_and_airflowignore_skips_the_specs(dagbag) -> None:  # type: ignore[no-untyped-def]
    """dags/.airflowignore is read in the configured syntax (Airflow 3's default: glob): the
    dag-processor walks the DAG files only, never the spec YAML beside them."""
    from airflow._shared.module_loading import find_path_from_directory
    from airflow.configuration import conf

    dags = REPO / "dags"
    syntax = conf.get("core", "dag_ignore_file_syntax")
    assert syntax == "glob"
    walked = sorted(Path(p).name for p in find_path_from_directory(dags, ".airflowignore", syntax))
    assert walked == DAG_FILES, "the dag-processor sees the DAG files and nothing else"
    assert {p.name for p in dags.glob("*.yaml")}, "the specs the ignore file skips are there"
    assert sorted({Path(d.fileloc).name for d in dagbag.dags.values()}) == DAG_FILES
    assert set(dagbag.dag_ids) == {"fraud_features", "fraud_features_hourly", "fraud_features_release",
                                   "fraud_model_scoring", "lockstep_maintenance"}


SPEC_FILES = sorted(p.name for p in (REPO / "dags").glob("*.yaml"))


@pytest.mark.parametrize("dag_file", DAG_FILES)
def test_tags_and_retries(dagbag, dag_file: str) -> None:  # type: ignore[no-untyped-def]
    """Every DAG the folder holds (not a hand-picked few) has tags and retries >= 2."""
    dags = [d for d in dagbag.dags.values() if Path(d.fileloc).name == dag_file]
    assert dags, f"{dag_file} defines no DAG"
    for dag in dags:
        assert dag.tags, f"{dag.dag_id} has no tags"
        for t in dag.tasks:
            if t.task_id not in ("gate", "promote"):  # decisions are made once; a refusal is not retried
                assert t.retries >= 2, f"{dag.dag_id}.{t.task_id} retries {t.retries}"


@pytest.mark.parametrize("spec_file", SPEC_FILES)
def test_pipeline_dag_shows_its_spec_description(dagbag, spec_file: str) -> None:  # type: ignore[no-untyped-def]
    from pipelines.spec import load_spec

    spec = load_spec(REPO / "dags" / spec_file)
    dag = dagbag.dags[spec.name]
    assert spec.description
    assert dag.description == spec.description
    assert dag.doc_md == spec.description, "the DAG's docs are its spec's, not the DAG factory's docstring"


def test_shape_of_the_pipeline_dag(dagbag) -> None:  # type: ignore[no-untyped-def]
    dag = dagbag.dags["fraud_features"]
    ids = {t.task_id for t in dag.tasks}
    assert ids == {"region.ingest", "region.validate_inputs", "region.transform", "region.validate",
                   "reconcile", "gate"}
    gate = dag.get_task("gate")
    assert [o.uri for o in gate.outlets] == ["lockstep://fraud_features/certified"]
    assert dag.get_task("reconcile").upstream_task_ids == {"region.validate"}
    consumer = dagbag.dags["fraud_model_scoring"]
    assert "lockstep://fraud_features/certified" in str(consumer.timetable.asset_condition)
    assert {t.task_id for t in consumer.tasks} == {"release_in_force", "score", "scored"}
    release = dagbag.dags["fraud_features_release"]
    assert {t.task_id for t in release.tasks} == {"plan", "train", "shadow", "evaluate", "promote"}
    assert [o.uri for o in release.get_task("promote").outlets] == ["lockstep://fraud_features/release"]
    assert release.get_task("evaluate").upstream_task_ids == {"plan", "shadow", "train"}


@pytest.mark.parametrize("dag_file", DAG_FILES)
def test_parsing_imports_neither_polars_nor_gx(dag_file: str) -> None:
    code = (
        "import runpy, sys; runpy.run_path(sys.argv[1]);"
        "heavy = [m for m in ('polars', 'deltalake', 'great_expectations', 'pandas') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(REPO / "dags" / dag_file)], capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip().splitlines()[-1:] in ([], [""]), f"{dag_file} imports {out.stdout.strip()}"


def test_dag_files_are_tiny() -> None:
    for name in DAG_FILES:
        lines = [ln for ln in (REPO / "dags" / name).read_text().splitlines() if ln.strip()]
        assert len(lines) <= 40, f"{name} has {len(lines)} lines"


def test_dag_file_does_no_io_beyond_its_spec(tmp_path: Path) -> None:
    """Parsing reads the spec next to the DAG file and writes nothing anywhere."""
    code = (
        "import builtins, runpy, sys; opened = [];"
        "orig = builtins.open\n"
        "def spy(f, mode='r', *a, **k):\n"
        "    opened.append((str(f), mode)); return orig(f, mode, *a, **k)\n"
        "builtins.open = spy; runpy.run_path(sys.argv[1]); builtins.open = orig\n"
        "print([o for o in opened if 'w' in o[1] or 'a' in o[1]])"
    )
    out = subprocess.run([sys.executable, "-c", code, str(REPO / "dags" / "fraud_features.py")],
                         capture_output=True, text=True, check=True, cwd=tmp_path)
    assert out.stdout.strip().splitlines()[-1] == "[]"
    assert list(tmp_path.iterdir()) == []
