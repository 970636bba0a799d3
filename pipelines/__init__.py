"""Lockstep: multi-region feature pipelines whose models read only certified data.

The public API, for embedding Lockstep in your own code and Airflow deployments::

    from pipelines import Interval, load_spec, read_certified, run_interval

Names are imported on first use, so that ``import pipelines.spec`` (what a DAG file needs)
costs neither polars nor deltalake nor Great Expectations.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Interval": "pipelines.spec",
    "PipelineSpec": "pipelines.spec",
    "load_spec": "pipelines.spec",
    "LockstepError": "pipelines.errors",
    "SpecError": "pipelines.errors",
    "run_interval": "pipelines.runner",
    "run_region": "pipelines.runner",
    "run_step": "pipelines.runner",
    "StepPayload": "pipelines.runner",
    "gate": "pipelines.certify",
    "certify": "pipelines.runner",
    "Generation": "pipelines.generation",
    "rollback": "pipelines.certify",
    "override": "pipelines.certify",
    "explain": "pipelines.certify",
    "diff": "pipelines.reconcile.diff",
    "decisions": "pipelines.certify",
    "current_certified": "pipelines.certify",
    "read_certified": "pipelines.certify",
    "build_dag": "pipelines.airflow",
    "certified_asset": "pipelines.airflow",
    "certified_generation": "pipelines.airflow.consumer",
    "read_for_consumer": "pipelines.airflow.consumer",
    "FeatureContext": "pipelines.features",
    "Transform": "pipelines.features",
    "parse_spec": "pipelines.spec",
    "expand_env": "pipelines.spec",
    "shipped_pipelines": "pipelines.spec",
    "templates": "pipelines.templates",
    "init_project": "pipelines.templates",
}

__all__ = [
    "FeatureContext",
    "Generation",
    "Interval",
    "LockstepError",
    "PipelineSpec",
    "SpecError",
    "StepPayload",
    "Transform",
    "build_dag",
    "certified_asset",
    "certified_generation",
    "certify",
    "current_certified",
    "decisions",
    "diff",
    "expand_env",
    "explain",
    "gate",
    "init_project",
    "load_spec",
    "override",
    "parse_spec",
    "read_certified",
    "read_for_consumer",
    "rollback",
    "run_interval",
    "run_region",
    "run_step",
    "shipped_pipelines",
    "templates",
]

if TYPE_CHECKING:
    from pipelines.airflow import build_dag, certified_asset
    from pipelines.airflow.consumer import certified_generation, read_for_consumer
    from pipelines.certify import (
        current_certified,
        decisions,
        explain,
        gate,
        override,
        read_certified,
        rollback,
    )
    from pipelines.errors import LockstepError, SpecError
    from pipelines.features import FeatureContext, Transform
    from pipelines.generation import Generation
    from pipelines.reconcile.diff import diff
    from pipelines.runner import StepPayload, certify, run_interval, run_region, run_step
    from pipelines.spec import (
        Interval,
        PipelineSpec,
        expand_env,
        load_spec,
        parse_spec,
        shipped_pipelines,
    )
    from pipelines.templates import init_project, templates


def __getattr__(name: str) -> Any:
    if name == "__version__":  # the installed distribution's (pipelines.version), read on first use
        from pipelines.version import CODE_VERSION

        return CODE_VERSION
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pipelines' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
