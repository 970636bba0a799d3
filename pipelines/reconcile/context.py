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

import polars as pl
from deltalake import DeltaTable

from pipelines.control.evidence import EvidenceSet, decode_profiles, evidence_uri, scan_evidence
from pipelines.control.index import load_indexed
from pipelines.control.results import CheckResult, load_results, rows_to_results
from pipelines.control.tables import REGION_RESULTS_TABLE
from pipelines.errors import ValidationStepError
from pipelines.evidence import Profile, plan_hash, profile_plan
from pipelines.generation import Generation, member_key
from pipelines.spec import Interval, PipelineSpec, TableSpec
from pipelines.spec.settings import settings
from pipelines.storage import OpenTables, decision_tables, open_table
from pipelines.validation.suites import Suite, current_suite, validated_tables


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
    #: region -> why it did not deliver in this run, as the orchestrator saw it (e.g. "ingest: failed")
    undelivered: dict[str, str] = field(default_factory=dict)
    #: region -> the newest failure its steps recorded in this run (``stage="delivery"``)
    failures: dict[str, CheckResult] = field(default_factory=dict)
    #: table -> the suite it is validated under now, or why it cannot be (missing, unreadable)
    _suites: dict[str, Suite | ValidationStepError] | None = None
    #: (region, table) -> its judged batches (the evidence and rollup checks both ask)
    _batches: dict[tuple[str, str], Batches] = field(default_factory=dict)
    #: "region/interval" -> why its index was not used (its tables were read instead)
    index_misses: dict[str, str] = field(default_factory=dict)
    use_index: bool = True

    @classmethod
    def build(cls, spec: PipelineSpec, interval: Interval, *, root: str | None = None, run_id: str = "",
              table: str | None = None, undelivered: dict[str, str] | None = None,
              use_index: bool | None = None) -> Context:
        """The interval's evidence (only ``table``'s, and no validation results, when given: what
        a single check such as "in sync?" needs). Each region's inputs come from its interval
        index where that verifies against its tables (:mod:`pipelines.control.index`), else
        from its tables (``use_index=False``, or ``LOCKSTEP_NO_INDEX``: from the tables alone);
        each control table read is opened once, and read at its newest version."""
        if use_index is None:
            use_index = not settings().no_index
        tables = decision_tables(spec.control_options())
        ev, region_checks, misses = read_evidence(spec, [interval.key], root=root, table=table, tables=tables,
                                                  checks=table is None, use_index=use_index)
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
        failures: dict[str, CheckResult] = {}
        if table is None:  # validation results and this run's step failures: the control plane's and the regions'
            stages = ["validation", "delivery"]
            df = load_results(spec.control_root(root), spec.name, interval.key, storage_options=spec.control_options(),
                              stage=tuple(stages), tables=tables)
            df = pl.concat([df, region_checks.filter(pl.col("stage").is_in(stages))], how="vertical_relaxed")
            df = df.sort("recorded_at")
            validation = rows_to_results(df.filter(pl.col("stage") == "validation"))
            failures = {f.region: f for f in rows_to_results(
                df.filter(pl.col("stage") == "delivery", pl.col("run_id") == run_id))} if run_id else {}
        return cls(spec, interval, root, Generation(interval.key, members), ev, profiles, validation, run_id,
                   tables=tables, undelivered=dict(undelivered or {}), failures=failures, index_misses=misses,
                   use_index=use_index)

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
            self._window[key], _, misses = read_evidence(self.spec, intervals, root=self.root, table=table,
                                                         tables=self.tables, checks=False, use_index=self.use_index)
            self.index_misses.update(misses)
        return self._window[key]

    @property
    def bytes_read(self) -> int:
        """Bytes read from the evidence store for this decision (the interval and its window)."""
        return self.evidence.bytes_read + sum(ev.bytes_read for ev in self._window.values())

    def current_plan(self, table: TableSpec) -> str:
        return plan_hash(profile_plan(self.spec, table))

    @property
    def suites(self) -> dict[str, Suite | ValidationStepError]:
        """Every validated table's current suite (loaded once per decision), or the error that
        says why it has none: a missing or unreadable suite is never "nothing to check"."""
        if self._suites is None:
            self._suites = {}
            for t in validated_tables(self.spec):
                try:
                    self._suites[t.name] = current_suite(self.spec, t)
                except ValidationStepError as exc:
                    self._suites[t.name] = exc
        return self._suites

    def batches(self, region: str, table: TableSpec) -> Batches:
        """The validation batches at exactly the generation's version of ``region``'s ``table``,
        judged against its current suite (see :class:`Batches`); judged once per decision."""
        key = (region, table.name)
        if key not in self._batches:
            self._batches[key] = self._judge(region, table)
        return self._batches[key]

    def _judge(self, region: str, table: TableSpec) -> Batches:
        p = self.profile(region, table)
        suite = self.suites.get(table.name)
        out = Batches(region, table, None if p is None else p.version,
                      suite if isinstance(suite, Suite) else None)
        if p is None or out.suite is None:
            return out
        groups: dict[str, list[CheckResult]] = {}
        for v in self.validation:
            if v.region == region and v.table == table.path and v.table_version == p.version and v.batch:
                groups.setdefault(v.batch, []).append(v)
        out.judge(groups)
        return out


#: up to how many intervals' evidence is read from the regions' interval indexes; a longer
#: window (a lineage lookback of a day of 15-minute intervals) reads each region's table once:
#: an index is one interval's, and one verified against 32 later commits before it misses
#: costs more than the table's one scan
INDEX_INTERVALS = 8


def read_evidence(spec: PipelineSpec, intervals: list[str], *, root: str | None, table: str | None,
                  tables: OpenTables, checks: bool, use_index: bool = True
                  ) -> tuple[EvidenceSet, pl.DataFrame, dict[str, str]]:
    """The evidence of ``intervals`` (``table``'s alone when given) and, with ``checks``, the
    regions' own check results of the one interval asked: from the regions' indexes where they
    verify, else (and with ``use_index=False``, or more than :data:`INDEX_INTERVALS`) from their
    tables. Returns the profiles, the
    check rows (all stages) and each index miss with its reason."""
    croot, opts = spec.control_root(root), spec.control_options()
    if checks and len(intervals) != 1:
        raise ValueError("check results are read for one interval at a time")
    opened: dict[str, DeltaTable] = {}

    def fallback(regions: list[str], ivs: list[str]) -> tuple[pl.DataFrame, pl.DataFrame]:
        uris = [evidence_uri(spec, r, root) for r in regions]
        uris += [REGION_RESULTS_TABLE.region_uri(croot, spec.name, r) for r in regions] if checks else []
        tables.prefetch(uris)  # the missed regions' tables, opened side by side
        df, got = scan_evidence(spec, ivs, root=root, regions=regions, table=table, tables=tables)
        opened.update(got)
        ck = load_results(croot, spec.name, ivs[0], storage_options=opts, tables=tables, regions=regions,
                          control=False) if checks else REGION_RESULTS_TABLE.empty()
        return df, ck

    if not use_index or len(set(intervals)) > INDEX_INTERVALS:
        df, ck = fallback(list(spec.regions), intervals)
        return decode_profiles(spec, df, opened.__getitem__, root=root), ck, {}
    got = load_indexed(croot, spec.name, list(spec.regions), intervals, fallback, opts, checks=checks)
    df = got.evidence if table is None else got.evidence.filter(pl.col("table") == table)

    def table_of(region: str) -> DeltaTable | None:  # an indexed region's table at the version verified
        if region not in opened:
            version = max((v for v in got.versions.get(region, {}).values() if v is not None), default=None)
            dt = None if version is None else open_table(evidence_uri(spec, region, root), opts, version)
            if dt is None:
                raise LookupError(f"{region} has no evidence table at the version its index named")
            opened[region] = dt
        return opened[region]

    return decode_profiles(spec, df, table_of, root=root), got.checks, got.misses


@dataclass
class Batches:
    """Validation batches of one (region, table) at one version, against the current suite.

    A batch counts only when its marker names the current suite's hash and it holds exactly
    one result for each of that suite's expectations (and, when it moved rows, the
    quarantine-cap result): a result set someone trimmed, or one run under another suite,
    is no evidence. Every counting batch is judged (there is no "newest" by a clock)."""

    region: str
    table: TableSpec
    version: int | None
    suite: Suite | None
    complete: list[list[CheckResult]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # why each other batch does not count
    other_suites: set[str] = field(default_factory=set)

    def judge(self, groups: dict[str, list[CheckResult]]) -> None:
        assert self.suite is not None
        sha = self.suite.sha
        expected = {f"{self.table.name}.{e.check_id}" for e in self.suite.expectations}
        for batch, rows in groups.items():
            markers = [v for v in rows if v.check_type == "suite_run"]
            shas = {v.suite_sha for v in rows}
            if not markers or any(m.suite_sha != sha for m in markers) or shas != {sha}:
                self.other_suites |= shas - {sha}
                if any(m.suite_sha == sha for m in markers):
                    self.problems.append(f"batch {batch} mixes results of suites {sorted(shas)}")
                continue
            got = [v.check_id for v in rows if v.check_type not in ("suite_run", "quarantine_cap", "event_time_window")]
            moved = any((m.details or {}).get("quarantined") for m in markers)
            capped = any(v.check_type == "quarantine_cap" for v in rows)
            missing = sorted(expected - set(got))
            extra = sorted(set(got) - expected)
            if missing or extra or len(got) != len(set(got)) or len(markers) != 1 or (moved and not capped):
                detail = (f"missing {missing[:5]}{' ...' if len(missing) > 5 else ''}" if missing else
                          f"unexpected {extra[:5]}" if extra else
                          "no quarantine-cap result although rows were quarantined" if moved and not capped else
                          "duplicated results")
                self.problems.append(f"batch {batch} holds {len(set(got) & expected)} of {len(expected)} "
                                     f"expectation results ({detail})")
                continue
            self.complete.append(rows)

    @property
    def results(self) -> list[CheckResult]:
        """Every result of every counting batch (a failure in any of them counts)."""
        return [v for rows in self.complete for v in rows]
