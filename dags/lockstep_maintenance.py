"""lockstep_maintenance: compaction, checkpoints and vacuum for every pipeline here, daily."""

from pathlib import Path

from pipelines.airflow.maintenance import build_maintenance_dag

dag = build_maintenance_dag(Path(__file__).parent)
