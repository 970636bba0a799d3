"""Certification: the gate, reads through certifications, operator decisions and explain.

A *generation* is one interval's snapshot across all regions: ``{region/layer/table: Delta
version}``. The gate (:mod:`~pipelines.certify.gate`) looks at the interval's recorded
reconciliation and appends one decision to the decision log
(:mod:`pipelines.control.decisions`: one commit per decision, so all regions of a generation
are certified at once or not at all). Consumers read through :func:`read_certified`
(:mod:`~pipelines.certify.read`), which time-travels each table to its certified version.
Operators :func:`override` a block or :func:`rollback` to an older generation
(:mod:`~pipelines.certify.operator`), each a new audited decision; :func:`explain`
(:mod:`~pipelines.certify.explain`) gives the account of an interval.

:func:`pipelines.certify_interval` (:func:`pipelines.runner.certify_interval`) sequences
reconciliation (from the evidence store) and the gate, which records its decision here.

Example::

    from pipelines import certify_interval, read_certified
    from pipelines.spec import Interval

    decision = certify_interval(spec, Interval.for_date("2026-01-01"), root=root)
    if decision.certified:
        lf = read_certified(spec, "card_features", "eu-west", root=root)
"""

from __future__ import annotations

from pipelines.certify.explain import explain
from pipelines.certify.gate import BINDINGS, bindings_hash, gate, reasons_of
from pipelines.certify.operator import override, rollback
from pipelines.certify.read import (
    active_certifications,
    current_certified,
    read_certified,
    removed_by_maintenance,
)
from pipelines.control.decisions import (
    CERTIFICATIONS,
    DECISION_SCHEMA,
    Decision,
    decisions,
    record_decision,
)
from pipelines.control.maintenance import MAINTENANCE
from pipelines.version import CODE_VERSION

__all__ = [
    "BINDINGS", "CERTIFICATIONS", "CODE_VERSION", "DECISION_SCHEMA", "MAINTENANCE", "Decision",
    "active_certifications", "bindings_hash", "current_certified", "decisions", "explain", "gate", "override",
    "read_certified", "reasons_of", "record_decision", "removed_by_maintenance", "rollback",
]
