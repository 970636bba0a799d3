"""The code version, defined once: the installed ``lockstep`` distribution's version.

Lockstep is always installed (a wheel, or ``pip install -e .`` in development), so the
version is read from the package metadata and never written down a second time. It goes
into every write's fingerprint (:mod:`pipelines.runner`) and every gate decision
(:mod:`pipelines.certify`): a new release re-writes an interval instead of calling it unchanged.
"""

from __future__ import annotations

from importlib.metadata import version

#: the distribution name in pyproject.toml's ``[project] name``
DISTRIBUTION = "lockstep"

CODE_VERSION: str = version(DISTRIBUTION)
