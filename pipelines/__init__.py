"""Lockstep: multi-region feature pipelines whose models read only certified data.

The public API, for embedding Lockstep in your own code and Airflow deployments::

    from pipelines import Interval, load_spec, read_certified, run_interval

Names are imported on first use, so that ``import pipelines.spec`` (what a DAG file needs)
costs neither polars nor deltalake nor Great Expectations.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

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
    "certify": "pipelines.certify",
    "rollback": "pipelines.certify",
    "override": "pipelines.certify",
    "explain": "pipelines.certify",
    "diff": "pipelines.reconcile.diff",
    "decisions": "pipelines.certify",
    "current_certified": "pipelines.certify",
    "read_certified": "pipelines.certify",
    "build_dag": "pipelines.airflow",
}

__all__ = [
    "Interval",
    "LockstepError",
    "PipelineSpec",
    "SpecError",
    "StepPayload",
    "build_dag",
    "certify",
    "current_certified",
    "decisions",
    "diff",
    "explain",
    "gate",
    "load_spec",
    "override",
    "read_certified",
    "rollback",
    "run_interval",
    "run_region",
    "run_step",
]

if TYPE_CHECKING:
    from pipelines.airflow import build_dag
    from pipelines.certify import (
        certify,
        current_certified,
        decisions,
        explain,
        gate,
        override,
        read_certified,
        rollback,
    )
    from pipelines.errors import LockstepError, SpecError
    from pipelines.reconcile.diff import diff
    from pipelines.runner import StepPayload, run_interval, run_region, run_step
    from pipelines.spec import Interval, PipelineSpec, load_spec


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pipelines' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
