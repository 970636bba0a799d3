"""Great Expectations, imported one way: with its usage statistics off.

Every Lockstep module that imports GX (``great_expectations`` or any of its submodules)
calls :func:`import_gx` first: the one place ``GX_ANALYTICS_ENABLED`` is set in the process
environment (GX reads its switch nowhere else), before GX's
first import reads it. Importing this module imports nothing of GX (that costs seconds) and
nothing of Lockstep, so any module of ``pipelines.validation`` may import it: it is the
bottom of the package.
"""

from __future__ import annotations

import functools
import logging
import os
from types import ModuleType


@functools.cache
def import_gx() -> ModuleType:
    """The ``great_expectations`` package, imported with its usage statistics off."""
    os.environ["GX_ANALYTICS_ENABLED"] = "false"
    # GX's import logs ~150 lines about registering its own API docs, at info: task logs
    # (Airflow shows info) began with them
    logging.getLogger("great_expectations._docs_decorators").setLevel(logging.WARNING)
    import great_expectations

    return great_expectations


@functools.cache
def gx_expectation_types() -> set[str]:
    """Every expectation type this GX knows (read from its registry)."""
    import_gx()
    from great_expectations.expectations.registry import list_registered_expectation_implementations

    return set(list_registered_expectation_implementations())
