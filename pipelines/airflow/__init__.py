"""Airflow glue: the only place Lockstep imports Airflow.

``build_dag(spec)`` turns a spec into a DAG; ``certified_asset(pipeline)`` is the Asset its
gate updates, for model DAGs to schedule on.
"""

from pipelines.airflow.dag import build_dag, certified_asset

__all__ = ["build_dag", "certified_asset"]
