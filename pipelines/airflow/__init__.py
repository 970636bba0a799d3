"""Airflow glue: the only place Lockstep imports Airflow.

``build_dag(spec)`` turns a spec into a DAG; ``certified_asset(pipeline)`` is the Asset its
gate updates, for model DAGs to schedule on; ``landing_asset(pipeline)`` the Asset a delivery
notifies under ``airflow.trigger: landing`` (see :mod:`pipelines.landing`). Names load on first use, so that
``pipelines.airflow.embedded`` (the embedded-Airflow launcher) starts without importing Airflow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["build_dag", "build_landing_dag", "certified_asset", "landing_asset"]

if TYPE_CHECKING:
    from pipelines.airflow.dag import build_dag, build_landing_dag, certified_asset, landing_asset


def __getattr__(name: str) -> Any:
    if name in __all__:
        from pipelines.airflow import dag

        return getattr(dag, name)
    raise AttributeError(f"module 'pipelines.airflow' has no attribute {name!r}")
