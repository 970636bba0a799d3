"""Airflow glue: the only place Lockstep imports Airflow.

``build_dag(spec)`` turns a spec into a DAG; ``certified_asset(pipeline)`` is the Asset its
gate updates, for model DAGs to schedule on; ``build_release_dag`` and ``build_scoring_dag``
build the model's release and scoring DAGs (``release_asset``: what a promotion updates); ``landing_asset(pipeline)`` the Asset a delivery
notifies under ``airflow.trigger: landing`` (see :mod:`pipelines.landing`). Names load on first use, so that
``pipelines.airflow.embedded`` (the embedded-Airflow launcher) starts without importing Airflow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["build_dag", "build_landing_dag", "build_release_dag", "build_scoring_dag", "certified_asset",
           "landing_asset", "release_asset"]
_RELEASE = ("build_release_dag", "build_scoring_dag", "release_asset")

if TYPE_CHECKING:
    from pipelines.airflow.dag import build_dag, build_landing_dag, certified_asset, landing_asset
    from pipelines.airflow.release import build_release_dag, build_scoring_dag, release_asset


def __getattr__(name: str) -> Any:
    if name in _RELEASE:
        from pipelines.airflow import release

        return getattr(release, name)
    if name in __all__:
        from pipelines.airflow import dag

        return getattr(dag, name)
    raise AttributeError(f"module 'pipelines.airflow' has no attribute {name!r}")
