"""Lockstep: multi-region feature pipelines whose models read only certified data.

The public API, for embedding Lockstep in your own code and Airflow deployments::

    from pipelines import Interval, certify_interval, load_spec, read_certified, run_interval

Every name in ``__all__`` is a function or class, except two packages: ``certify`` (the
gate, certified reads, operator decisions, explain: :mod:`pipelines.certify`) and
``templates`` (the pipeline templates: :mod:`pipelines.templates`). Reconciling and then
gating an interval is :func:`certify_interval`; the templates are listed by
:func:`list_templates`.

Names are imported on first use, so that ``import pipelines.spec`` (what a DAG file needs)
costs neither polars nor deltalake nor Great Expectations.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: public name -> the module it is taken from; a name whose module is ``pipelines.<name>``
#: is that module itself (the packages ``certify`` and ``templates``)
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
    "certify_interval": "pipelines.runner",
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
    "list_templates": "pipelines.templates",
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
    "certify_interval",
    "current_certified",
    "decisions",
    "diff",
    "expand_env",
    "explain",
    "gate",
    "init_project",
    "list_templates",
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
    from pipelines import certify, templates
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
    from pipelines.runner import StepPayload, certify_interval, run_interval, run_region, run_step
    from pipelines.spec import (
        Interval,
        PipelineSpec,
        expand_env,
        load_spec,
        parse_spec,
        shipped_pipelines,
    )
    from pipelines.templates import init_project, list_templates


def __getattr__(name: str) -> Any:
    if name == "__version__":  # the installed distribution's (pipelines.version), read on first use
        from pipelines.version import CODE_VERSION

        return CODE_VERSION
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pipelines' has no attribute {name!r}")
    imported = importlib.import_module(module)
    if module == f"{__name__}.{name}":  # a package of the public API (importing it bound it, too)
        return imported
    return getattr(imported, name)
