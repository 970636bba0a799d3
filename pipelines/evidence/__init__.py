"""Evidence: what each region publishes about the exact table versions it wrote.

The gate decides from evidence alone (DESIGN rule 7): a region step that writes a table
version profiles the rows it wrote, where they live, and appends the profile to the evidence
store on the control plane (:mod:`pipelines.control.evidence`); validation records its
results bound to the same version. Nothing on the gate's path reads a region's tables.

This package is what a profile is and how it is computed: :mod:`~pipelines.evidence.profile`
(row counts, control totals, histograms, the digest tree's summary),
:mod:`~pipelines.evidence.hashing` (the row hash) and the cells of the digest tree.

Example::

    from pipelines.control.evidence import load, publish_write

    ref = write_interval(uri, frame, ...)
    publish_write(spec, "eu-west", table, "raw", interval, frame, ref)
    load(spec, [interval.key]).newest("eu-west", "raw", "transactions", interval.key).rows
"""

from __future__ import annotations

from pipelines.evidence.profile import (
    KEYED_LIMIT,
    Profile,
    build_profile,
    plan_hash,
    profile_plan,
    totals_of,
)

__all__ = ["KEYED_LIMIT", "Profile", "build_profile", "plan_hash", "profile_plan", "totals_of"]
