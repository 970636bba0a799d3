"""Whether an interval's certification still stands: re-running it could change nothing.

An interval's newest decision *stands* when it certified the interval under the current spec
and the current suites (by content hash), and every table's partition of the interval still
holds exactly the files that decision certified, and no input partition inside its lookback
was written after the input versions it bound (:mod:`pipelines.certify.stale`: a backfilled or
corrected earlier day makes it stale). A backfill then skips the interval, and a
re-run whose steps all skipped (their fingerprints unchanged) neither validates again nor
reconciles nor records a decision: the history gains a line only when a decision changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipelines.certify import Decision, decisions
from pipelines.certify.stale import stale_certifications, stale_line
from pipelines.errors import LockstepError
from pipelines.spec import Interval, PipelineSpec
from pipelines.storage import partition_files
from pipelines.validation.suites import current_suite, validated_tables


@dataclass(frozen=True)
class Standing:
    """The interval's newest decision, and why it does not stand (``why`` empty when it does)."""

    decision: Decision | None
    why: str

    @property
    def stands(self) -> bool:
        return self.decision is not None and not self.why


def standing(spec: PipelineSpec, interval: Interval, *, root: str | None = None,
             log: list[Decision] | None = None, stale: dict[str, list[dict[str, Any]]] | None = None) -> Standing:
    """Whether ``interval``'s newest decision (in the log's commit order) still stands.
    ``stale``: :func:`~pipelines.certify.stale.stale_certifications` of the intervals asked
    about, when already computed (a backfill's plan reads the evidence once)."""
    d = None
    for decision in decisions(spec, root=root) if log is None else log:
        if decision.interval == interval.key:
            d = decision
    if d is None:
        return Standing(None, "never run")
    if not d.certified:
        return Standing(d, f"last decision blocked ({len(d.reasons)} reasons)")
    if d.spec_hash != spec.spec_hash():
        return Standing(d, "spec changed since certification")
    bound = (d.bindings or {}).get("suites") or {}
    for table in validated_tables(spec):
        try:
            sha = current_suite(spec, table).sha
        except LockstepError as exc:
            return Standing(d, f"suite of {table.path}: {exc}")
        if bound.get(table.name) != sha:
            return Standing(d, f"suite of {table.path} changed since certification")
    if not _partitions_unchanged(spec, interval, d, root):
        return Standing(d, "its partitions changed since certification")
    if stale is None:
        stale = stale_certifications(spec, root=root, log=log, intervals=[interval.key])
    changed = stale.get(interval.key)
    if changed:  # an input partition inside its lookback was written after it was certified
        return Standing(d, stale_line(changed))
    return Standing(d, "")


def _partitions_unchanged(spec: PipelineSpec, iv: Interval, d: Decision, root: str | None) -> bool:
    """Every table's partition of the interval holds the files it held when certified."""
    for region in spec.regions:
        opts = spec.region_options(region)
        for t in spec.tables:
            certified = d.generation.version(region, t.layer, t.name)
            if certified is None:
                return False
            uri = spec.table_uri(region, t.layer, t.name, root)
            part = iv.partition(t.partition_by)
            if partition_files(uri, part, storage_options=opts) != partition_files(
                uri, part, version=certified, storage_options=opts
            ):
                return False
    return True
