"""The maintenance DAG: ``lockstep maintain`` for every shipped pipeline, daily.

A DAG file is three lines (``dags/lockstep_maintenance.py``)::

    from pathlib import Path
    from pipelines.airflow.maintenance import build_maintenance_dag
    dag = build_maintenance_dag(Path(__file__).parent)

One task per pipeline spec in the folder; each runs :func:`pipelines.maintain.maintain`
(compaction, checkpoints, a vacuum that keeps every protected version). Parsing imports
neither polars nor deltalake: they load inside the task.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, task
from airflow.sdk.exceptions import AirflowFailException

from pipelines.spec import load_spec


def _maintain(spec_path: str) -> dict[str, Any]:
    from pipelines.errors import LockstepError
    from pipelines.maintain import maintain
    from pipelines.spec.settings import settings

    try:
        report = maintain(load_spec(spec_path), root=settings().root)
    except LockstepError as exc:
        if exc.retryable:
            raise
        raise AirflowFailException(str(exc)) from exc
    s = report.summary()
    return {k: s[k] for k in ("tables", "files_before", "files_after", "files_compacted", "files_removed")}


def build_maintenance_dag(dags_dir: str | Path, *, dag_id: str = "lockstep_maintenance") -> DAG:
    """A DAG with one ``maintain`` task per pipeline spec (``*.yaml``) in ``dags_dir``."""
    specs = sorted(Path(dags_dir).glob("*.yaml"))
    with DAG(
        dag_id=dag_id,
        description="Lockstep storage maintenance: compaction, checkpoints, vacuum within the rollback window",
        schedule="@daily",
        start_date=datetime(2026, 1, 1, tzinfo=UTC),
        catchup=False,
        max_active_runs=1,
        tags=["lockstep", "maintenance"],
        default_args={"owner": "lockstep", "retries": 2},
        doc_md=__doc__,
    ) as dag:
        for path in specs:
            spec = load_spec(path)

            @task(task_id=f"maintain_{spec.name}")
            def run(spec_path: str = str(path)) -> dict[str, Any]:
                return _maintain(spec_path)

            run()
    return dag
