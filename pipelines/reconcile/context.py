"""What every cross-region check reads: the evidence about one generation, never its tables.

:meth:`Context.build` reads the interval's partition of the evidence store and assembles the
generation from it: for each region and table, the newest version some region published a
profile about for this interval. Every check then reads those profiles (and the validation
results bound to the same versions), so the gate certifies exactly the versions its evidence
describes, whatever writers commit meanwhile, and works when the regions' storage is not
readable from the control plane at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipelines.checks import CheckResult, load_results, rows_to_results
from pipelines.evidence import Profile, plan_hash, profile_plan
from pipelines.evidence.store import EvidenceSet, load
from pipelines.generation import Generation, member_key
from pipelines.spec import Interval, PipelineSpec, TableSpec
from pipelines.storage import OpenTables, decision_tables


@dataclass
class Context:
    spec: PipelineSpec
    interval: Interval
    root: str | None  # the caller's root override (None: the spec's)
    generation: Generation
    evidence: EvidenceSet
    profiles: dict[str, Profile] = field(default_factory=dict)  # member -> profile
    validation: list[CheckResult] = field(default_factory=list)
    run_id: str = ""
    _window: dict[tuple[str, ...], EvidenceSet] = field(default_factory=dict)
    #: the control tables this decision opened (each once; see :class:`OpenTables`)
    tables: OpenTables = field(default_factory=OpenTables)

    @classmethod
    def build(cls, spec: PipelineSpec, interval: Interval, *, root: str | None = None, run_id: str = "",
              table: str | None = None) -> Context:
        """The interval's evidence (only ``table``'s, and no validation results, when given: what
        a single check such as "in sync?" needs). Each control table is opened once, and read
        at its newest version."""
        tables = decision_tables(spec.control_options())
        ev = load(spec, [interval.key], root=root, table=table, tables=tables)
        members: dict[str, int] = {}
        profiles: dict[str, Profile] = {}
        for region in spec.regions:
            for t in spec.tables:
                if t.layer == "quarantine" or (table is not None and t.name != table):
                    continue
                p = ev.newest(region, t.layer, t.name, interval.key)
                if p is None:
                    continue
                members[p.member] = p.version
                profiles[p.member] = p
                if p.quarantine is not None:
                    q = ev.at(region, "quarantine", t.name, interval.key, int(p.quarantine["version"]))
                    qkey = member_key(region, "quarantine", t.name)
                    members[qkey] = int(p.quarantine["version"])
                    if q is not None:
                        profiles[qkey] = q
        validation: list[CheckResult] = []
        if table is None:
            df = load_results(spec.control_root(root), spec.name, interval.key, storage_options=spec.control_options(),
                              stage="validation", tables=tables)
            validation = rows_to_results(df.sort("recorded_at")) if df.height else []
        return cls(spec, interval, root, Generation(interval.key, members), ev, profiles, validation, run_id,
                   tables=tables)

    def profile(self, region: str, table: TableSpec, layer: str | None = None) -> Profile | None:
        """The generation's profile of ``region``'s ``table`` (None when it has none)."""
        return self.profiles.get(member_key(region, layer or table.layer, table.name))

    def version(self, region: str, table: TableSpec, layer: str | None = None) -> int | None:
        return self.generation.version(region, layer or table.layer, table.name)

    def quarantined(self, region: str, table: TableSpec) -> dict[str, Any] | None:
        """The quarantine that produced the generation's version of ``table`` (rows, totals)."""
        p = self.profile(region, table)
        return None if p is None else p.quarantine

    def window(self, intervals: list[str], table: str) -> EvidenceSet:
        """Profiles of earlier intervals (the drift window), read once."""
        key = (table, *intervals)
        if key not in self._window:
            self._window[key] = load(self.spec, intervals, root=self.root, table=table, tables=self.tables)
        return self._window[key]

    @property
    def bytes_read(self) -> int:
        """Bytes read from the evidence store for this decision (the interval and its window)."""
        return self.evidence.bytes_read + sum(ev.bytes_read for ev in self._window.values())

    def current_plan(self, table: TableSpec) -> str:
        return plan_hash(profile_plan(self.spec, table))
