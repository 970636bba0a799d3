"""Lockstep: multi-region feature pipelines whose models read only certified data.

The public API, for embedding Lockstep in your own code and Airflow deployments::

    from pipelines import load_spec, run_interval, read_certified, Interval
"""

from pipelines.certify import current_certified, decisions, gate, read_certified
from pipelines.errors import LockstepError, SpecError
from pipelines.runner import run_interval, run_region, run_step
from pipelines.spec import Interval, PipelineSpec, load_spec

__all__ = [
    "Interval",
    "LockstepError",
    "PipelineSpec",
    "SpecError",
    "current_certified",
    "decisions",
    "gate",
    "load_spec",
    "read_certified",
    "run_interval",
    "run_region",
    "run_step",
]
__version__ = "0.1.0"
