"""Generations, gate decisions, the certification log and certified reads.

A *generation* is one interval's snapshot across all regions: ``{region/layer/table: Delta
version}``. The gate looks at the interval's check results and writes one decision to
``<root>/<pipeline>/_lockstep/certifications`` (Delta, append-only, one commit per decision,
so all regions of a generation are certified at once or not at all). Consumers read through
:func:`read_certified`, which time-travels each table to its certified version.

Decisions are data, never edited: ``gate`` (certify or block), ``override`` (certify
despite a block, optionally until an expiry) and ``rollback`` (re-point to an older
generation; tables are never RESTOREd) each append one row, with who, when, the run id and
the reason. The generation *in force* is folded from the log (:func:`active_certifications`)
in the log's own order - each row carries the Delta version of the commit that holds it
(``log_version``), never a host's clock: per interval the newest live certifying decision; a
rollback revokes every interval after its target; an expired override no longer counts. What
consumers read "now" is the newest certified interval that has closed.

Every decision is bound to what it decides on (:attr:`Decision.bindings`, hashed into
:attr:`Decision.digest`): the suites by content, each derived version's input versions, each
member's data files by content hash; an override to the block it reviewed, a rollback to the
generation it names and what it replaced.

This module is the decision log; :func:`pipelines.runner.certify` sequences reconciliation
(from the evidence store) and the gate, which records its decision here.

Example::

    decision = pipelines.certify(spec, Interval.for_date("2026-01-01"), root=root)
    if decision.certified:
        lf = read_certified(spec, "card_features", "eu-west", root=root)
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from pipelines.checks import CheckResult
from pipelines.errors import CertificationError
from pipelines.generation import Generation, generation_of
from pipelines.spec import Interval, PipelineSpec
from pipelines.storage import (
    OpenTables,
    append_in_order,
    decision_tables,
    read_table,
    scan_partition,
    table_version,
)
from pipelines.version import CODE_VERSION

CERTIFICATIONS = "certifications"

DECISION_SCHEMA = pl.Schema({
    "decision_id": pl.String(),
    "pipeline": pl.String(),
    "interval": pl.String(),
    "interval_start": pl.Datetime("us", "UTC"),
    "generation_id": pl.String(),
    "generation": pl.String(),
    "status": pl.String(),
    "kind": pl.String(),
    "reasons": pl.String(),
    "reason": pl.String(),
    "who": pl.String(),
    "decided_at": pl.Datetime("us", "UTC"),
    "run_id": pl.String(),
    "spec_hash": pl.String(),
    "code_version": pl.String(),
    "expires_at": pl.Datetime("us", "UTC"),
    "suites_hash": pl.String(),
    "target": pl.String(),
    "log_version": pl.Int64(),
    "bindings": pl.String(),
    "digest": pl.String(),
})


@dataclass
class Decision:
    decision_id: str
    pipeline: str
    interval: str
    interval_start: datetime
    generation: Generation
    status: str  # certified | blocked
    kind: str  # gate | override | rollback
    reasons: list[dict[str, Any]] = field(default_factory=list)
    reason: str = ""
    who: str = ""
    decided_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    run_id: str = ""
    spec_hash: str = ""
    code_version: str = CODE_VERSION
    expires_at: datetime | None = None
    suites_hash: str = ""
    target: str = ""  # rollback: the decision re-instated; override: the block overridden
    #: what the decision is bound to, verified when it was made: the suites by content hash
    #: (``suites``), each derived version's input versions (``inputs``), every data file's
    #: content hash (``files``: member -> {path: {sha256, size}}), and for an operator's decision
    #: what was in force or blocked when it was made (``reviewed``)
    bindings: dict[str, Any] = field(default_factory=dict)
    #: the decision's place in the log: the Delta version of the commit that holds it (the log
    #: is folded in this order; ``decided_at`` is the deciding host's clock, information only)
    log_version: int | None = None

    @property
    def certified(self) -> bool:
        return self.status == "certified"

    @property
    def digest(self) -> str:
        """Content hash of what the decision decides on: pipeline, interval, generation and its
        bindings (an approval binds this; a changed generation or binding changes it)."""
        body = {"pipeline": self.pipeline, "interval": self.interval, "generation": self.generation.members,
                "bindings": self.bindings}
        return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:32]

    @property
    def generation_id(self) -> str:
        return self.generation.id

    def to_row(self) -> dict[str, Any]:
        row = asdict(self)
        row.update(
            generation_id=self.generation.id,
            generation=json.dumps(self.generation.members, sort_keys=True),
            reasons=json.dumps(self.reasons, default=str),
            bindings=json.dumps(self.bindings, sort_keys=True, default=str),
            digest=self.digest,
        )
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Decision:
        gen = Generation(row["interval"], json.loads(row["generation"]))
        return cls(
            decision_id=row["decision_id"], pipeline=row["pipeline"], interval=row["interval"],
            interval_start=row["interval_start"], generation=gen, status=row["status"], kind=row["kind"],
            reasons=json.loads(row["reasons"] or "[]"), reason=row["reason"] or "", who=row["who"] or "",
            decided_at=row["decided_at"], run_id=row["run_id"] or "", spec_hash=row["spec_hash"] or "",
            code_version=row["code_version"] or "", expires_at=row.get("expires_at"),
            suites_hash=row.get("suites_hash") or "", target=row.get("target") or "",
            bindings=json.loads(row.get("bindings") or "{}"), log_version=row.get("log_version"),
        )

    def live(self, now: datetime | None = None) -> bool:
        """Not expired (an override with an expiry stops counting after it)."""
        return self.expires_at is None or self.expires_at > (now or datetime.now(UTC))


def who_am_i() -> str:
    """The deciding user: an Airflow user when a task says so, else the OS user."""
    return os.environ.get("LOCKSTEP_ACTOR") or getpass.getuser()


def _decision_id(spec: PipelineSpec, interval_key: str, now: datetime) -> str:
    # unique whatever the deciding host's clock says (two hosts, one skewed, may share a tick)
    return f"{spec.name}:{interval_key}:{now.strftime('%Y%m%dT%H%M%S%f')}-{uuid.uuid4().hex[:8]}"


def bindings_hash(suites: dict[str, str]) -> str:
    """One hash of the suites a decision is bound to ({table: suite sha})."""
    if not suites:
        return ""
    return hashlib.sha256(json.dumps(suites, sort_keys=True).encode()).hexdigest()[:16]


def reasons_of(results: list[CheckResult]) -> list[dict[str, Any]]:
    return [
        {"check_id": r.check_id, "check_type": r.check_type, "region": r.region, "table": r.table,
         "message": r.message, "observed": r.observed, "threshold": r.threshold}
        for r in results if r.blocking
    ]


def record_decision(spec: PipelineSpec, decision: Decision, *, root: str | None = None,
                    tables: OpenTables | None = None) -> Decision:
    """Write a decision in one commit to the certification log (before it takes effect), as
    exactly the commit its ``log_version`` names: its place in the log is the log's own order.
    ``tables``: the decision's open control tables (the append commits through them)."""

    def row(version: int) -> pl.DataFrame:
        decision.log_version = version
        return pl.DataFrame([decision.to_row()], schema=DECISION_SCHEMA)

    append_in_order(spec.lockstep_uri(CERTIFICATIONS, root), row, spec.control_options(),
                    tables=tables or decision_tables(spec.control_options()))
    return decision


def gate(
    spec: PipelineSpec, interval: Interval, results: list[CheckResult], *, root: str | None = None,
    run_id: str = "", generation: Generation | None = None, tables: OpenTables | None = None,
) -> Decision:
    """Certify ``generation`` when no result blocks, else record the block.

    ``generation`` is what the reconciliation judged (default: the ``generation.snapshot`` in
    ``results``, which the evidence store assembled); without one,
    or with no reconciliation result at all, the gate blocks: it never certifies blind."""
    reasons = reasons_of(results)
    generation = generation or generation_of(results)
    if generation is None:
        generation = Generation(interval.key, {})
        reasons.append({"check_id": "generation.judged", "check_type": "generation", "region": "*", "table": "*",
                        "message": f"no reconciliation of {interval.key} in run {run_id or '(none)'}: nothing judged, "
                                   "nothing certified", "observed": None, "threshold": None})
    gen = generation
    missing = [
        f"{region}/{t.layer}/{t.name}" for region in spec.regions for t in spec.tables
        if t.layer != "quarantine" and f"{region}/{t.layer}/{t.name}" not in gen.members
    ]
    if missing and not any(r["check_id"] in ("generation.complete", "generation.judged") for r in reasons):
        reasons.append({"check_id": "generation.complete", "check_type": "generation", "region": "*",
                        "table": "*", "message": f"tables missing: {missing}", "observed": missing, "threshold": []})
    snapshot = next((r for r in results if r.check_id == "generation.snapshot"), None)
    bindings: dict[str, Any] = dict(snapshot.details.get("bindings") or {}) if snapshot is not None else {}
    unbound = [k for k in BINDINGS if k not in bindings]
    if unbound and not reasons:  # fail closed: a generation is certified only with every binding verified
        reasons.append({"check_id": "generation.bound", "check_type": "generation", "region": "*", "table": "*",
                        "message": f"the reconciliation of {interval.key} recorded no {', '.join(unbound)} binding: "
                                   "nothing certified unbound; re-run `lockstep certify`",
                        "observed": unbound, "threshold": []})
    now = datetime.now(UTC)
    decision = Decision(
        decision_id=_decision_id(spec, interval.key, now),
        pipeline=spec.name, interval=interval.key, interval_start=interval.start, generation=gen,
        status="blocked" if reasons else "certified", kind="gate", reasons=reasons, who=who_am_i(),
        decided_at=now, run_id=run_id, spec_hash=spec.spec_hash(),
        suites_hash=bindings_hash(bindings.get("suites") or {}), bindings=bindings,
    )
    return record_decision(spec, decision, root=root, tables=tables)


#: what every certification is bound to (see :attr:`Decision.bindings`)
BINDINGS = ("suites", "inputs", "files")


def decisions(spec: PipelineSpec, *, root: str | None = None) -> list[Decision]:
    """Every decision, oldest first."""
    uri = spec.lockstep_uri(CERTIFICATIONS, root)
    opts = spec.control_options()
    dt = decision_tables(opts).get(uri)  # the newest version, opened once per decision
    if dt is None:
        return []
    df = scan_partition(dt, {}, opts).collect()
    if "log_version" not in df.columns:
        df = df.with_columns(log_version=pl.lit(None, pl.Int64))
    numbered = df.filter(pl.col("log_version").is_not_null())
    dupes = numbered.filter(pl.col("log_version").is_duplicated())["log_version"].unique().sort().to_list()
    if dupes or (numbered.height and int(numbered["log_version"].max()) > dt.version()):  # type: ignore[arg-type]
        raise CertificationError(
            f"{uri}: the decision log is inconsistent (log versions {dupes or 'beyond the table version'} are "
            "claimed by more than one decision or by no commit): it was written outside Lockstep; nothing can be "
            "read through it until it is repaired", retryable=False)
    # commit order; rows written before decisions carried their log version keep their old order, first
    df = df.sort(pl.col("log_version").is_not_null(), "log_version", "decided_at", nulls_last=False)
    return [Decision.from_row(r) for r in df.iter_rows(named=True)]


def active_certifications(
    spec: PipelineSpec, *, root: str | None = None, now: datetime | None = None,
    log: list[Decision] | None = None,
) -> dict[str, Decision]:
    """Interval -> the certifying decision in force for it, folded from the log.

    Per interval the newest live certifying decision counts (gate or override); a rollback
    re-instates its target generation and revokes every later interval certified before it.
    """
    now = now or datetime.now(UTC)
    stacks: dict[str, list[Decision]] = {}
    for d in log if log is not None else decisions(spec, root=root):
        if d.kind == "rollback":
            for key in [k for k, st in stacks.items() if st[0].interval_start > d.interval_start]:
                del stacks[key]
            stacks.setdefault(d.interval, []).append(d)
        elif d.certified:
            stacks.setdefault(d.interval, []).append(d)
    active = {}
    for key, stack in stacks.items():
        live = [d for d in stack if d.live(now)]
        if live:
            active[key] = live[-1]
    return active


def current_certified(spec: PipelineSpec, *, root: str | None = None, at: str | None = None,
                      log: list[Decision] | None = None, now: datetime | None = None) -> Decision | None:
    """The generation in force: the newest certified interval that has closed by ``now`` (the
    wall clock by default; a certified interval that has not closed yet never becomes it), or
    the one ``at`` names (a generation id or an interval key). ``log``: the decision log, when
    already read. Ties between decisions are broken by the log's order, never by a clock."""
    now = now or datetime.now(UTC)
    active = list(active_certifications(spec, root=root, log=log, now=now).values())
    if at is not None:
        active = [d for d in active if at in (d.generation_id, d.interval)]
    else:
        length = spec.interval_length
        active = [d for d in active if d.interval_start + length <= now]
    if not active:
        return None
    return max(active, key=lambda d: (d.interval_start, _order(d)))


def _order(d: Decision) -> int:
    return -1 if d.log_version is None else d.log_version


def _why_not(spec: PipelineSpec, at: str | None, log: list[Decision]) -> str:
    if at is None:
        return f"{spec.name}: no certified generation"
    named = [d for d in log if at in (d.generation_id, d.interval)]
    if not named:
        return f"{spec.name}: no decision about {at!r}"
    if any(d.certified for d in named):
        return f"{spec.name}: {at!r} was certified, but that certification was revoked by a rollback or expired"
    last = named[-1]
    return f"{spec.name}: {at!r} is not certified (last decision: {last.status} at {last.decided_at:%Y-%m-%d %H:%M})"


def read_certified(
    spec: PipelineSpec, table: str, region: str, *, at: str | None = None, root: str | None = None,
    max_staleness: timedelta | None = None, consumer: str | None = None, now: datetime | None = None,
) -> pl.LazyFrame:
    """The certified interval of ``table`` in ``region``, at its certified Delta version.

    Never returns uncertified data: with no certified generation it raises
    :class:`CertificationError`. ``max_staleness`` (default: the ``consumer``'s, from the
    spec) fails the read when the certified interval ended more than that before ``now``: the
    consumer's own logical date (default: the wall clock), so a consumer scoring a historical
    interval is measured against that interval. A ``consumer`` pinned to a feature version
    (``consumers[].feature_versions``) fails on data computed by any other version.
    """
    cons = next((c for c in spec.consumers if c.name == consumer), None) if consumer else None
    if consumer and cons is None:
        raise CertificationError(f"{spec.name}: no consumer named {consumer!r} in the spec", retryable=False)
    if max_staleness is None and cons is not None:
        max_staleness = cons.max_staleness
    log = decisions(spec, root=root)  # read once: the decision in force, why none, a pinned consumer's
    decision = current_certified(spec, root=root, at=at, log=log, now=now)
    if decision is None:
        raise CertificationError(_why_not(spec, at, log))
    t = spec.table(table)
    version = decision.generation.version(region, t.layer, t.name)
    if version is None:
        raise CertificationError(f"{spec.name}: generation {decision.generation_id} has no {region}/{t.path}")
    if max_staleness is not None:
        measured_at = (now or datetime.now(UTC)).astimezone(UTC)
        ended = decision.interval_start + spec.interval_length
        age = measured_at - ended
        if age > max_staleness:
            whose = f" of consumer {consumer!r}" if consumer else ""
            raise CertificationError(
                f"{spec.name}: certified generation {decision.generation_id} ended {age} before "
                f"{measured_at:%Y-%m-%d %H:%M} UTC, over the staleness budget {max_staleness}{whose}",
                retryable=False,
            )
    iv = spec.interval_at(decision.interval_start)
    uri = spec.table_uri(region, t.layer, t.name, root)
    part = iv.partition(t.partition_by)
    if cons is not None and t.name in cons.feature_versions:
        decision = _pinned_generation(spec, log, decision, t, region, cons.name, cons.feature_versions[t.name],
                                      uri, part)
        version = decision.generation.version(region, t.layer, t.name)
        assert version is not None
    if not _partition_files_present(uri, version, part, spec.region_options(region)):
        removed = removed_by_maintenance(spec.control_root(root), spec.name, uri, version, spec.control_options())
        raise CertificationError(f"{spec.name}: generation {decision.generation_id}: "
                                 + (removed or f"{uri}: the files of version {version} are missing"), retryable=False)
    # the files are read once, checked against the content hashes the certification bound, and
    # the rows come from exactly the bytes checked (a file changed behind Delta is refused)
    from pipelines.integrity import verified_scan

    member = f"{region}/{t.layer}/{t.name}"
    return verified_scan(uri, version, part, (decision.bindings.get("files") or {}).get(member) or {},
                         spec.region_options(region), what=f"{spec.name}: generation {decision.generation_id}: {member}")


def _pinned_generation(spec: PipelineSpec, log: list[Decision], in_force: Decision, t: Any, region: str,
                       consumer: str, pinned: str, uri: str, part: dict[str, str]) -> Decision:
    """For a consumer pinned to a feature version: the newest certified generation of the
    interval, from the one in force back, whose ``region`` data of ``t`` that version computed
    (a bump certified later does not take its data away; a rollback's skipped decisions and
    generations whose files maintenance removed do not count)."""
    from pipelines.features import pinned_version_problem

    log = [d for d in log if d.interval == in_force.interval and _order(d) <= _order(in_force)]
    by_id = {d.decision_id: d for d in log}
    skipped = {d.decision_id for r in log if r.kind == "rollback" and r.target in by_id
               for d in log if _order(by_id[r.target]) < _order(d) < _order(r)}
    candidates = [in_force] + [d for d in reversed(log) if d.certified and d.kind != "rollback"
                               and d.decision_id not in skipped and d.decision_id != in_force.decision_id]
    opts = spec.region_options(region)
    seen: list[str] = []
    for d in candidates:
        version = d.generation.version(region, t.layer, t.name)
        if version is None:
            continue
        if not _partition_files_present(uri, version, part, opts):
            seen.append(f"{d.generation_id}: files removed by maintenance")
            continue
        problem = pinned_version_problem(read_table(uri, version=version, partition=part, storage_options=opts),
                                         pinned)
        if problem is None:
            return d
        seen.append(f"{d.generation_id}: {problem}")
    raise CertificationError(
        f"{spec.name}: consumer {consumer!r} is pinned to feature version {pinned!r}, and no certified generation of "
        f"{in_force.interval} of {region}/{t.path} was computed by it ({'; '.join(seen) or 'none certified'})",
        retryable=False)


def _partition_files_present(uri: str, version: int, partition: dict[str, str],
                             storage_options: dict[str, str] | None) -> bool:
    """Do the data files of one partition at ``version`` still exist? (Checked on local
    storage, where a vacuum's removals are cheap to see; object stores answer at read time.)"""
    if "://" in uri and not uri.startswith("file://"):
        return True
    from pathlib import Path
    from urllib.parse import unquote, urlparse

    from pipelines.storage import open_table

    dt = open_table(uri, storage_options, version)
    if dt is None:
        return False
    files = dt.file_uris(partition_filters=[(k, "=", v) for k, v in partition.items()])
    return all(Path(unquote(urlparse(f).path) if f.startswith("file://") else f).exists() for f in files)


MAINTENANCE = "maintenance"


def removed_by_maintenance(control_root: str, pipeline: str, uri: str, version: int,
                           storage_options: dict[str, str] | None = None) -> str | None:
    """Why ``version`` of the table at ``uri`` can no longer be read, from the maintenance log
    (``lockstep maintain`` removed its files: outside the rollback window, nothing protected
    it), or None when it was never removed."""
    from pipelines.paths import lockstep_uri

    log_uri = lockstep_uri(control_root, pipeline, MAINTENANCE)
    if table_version(log_uri, storage_options) is None:
        return None
    rows = (read_table(log_uri, storage_options=storage_options)
            .filter((pl.col("uri") == uri) & (pl.col("version") > version)).sort("ran_at").collect())
    for row in rows.iter_rows(named=True):
        if version not in json.loads(row["kept_versions"]):
            return (f"{uri}: version {version} was removed by `lockstep maintain` at {row['ran_at']:%Y-%m-%d %H:%M} "
                    f"UTC: it was outside the rollback window ({row['rollback_window']}) and no certification in "
                    "force or unexpired override referred to it")
    return None


# --------------------------------------------------------------------------- operator decisions
def _manual_run_id(kind: str) -> str:
    return os.environ.get("LOCKSTEP_RUN_ID") or f"lockstep__{kind}_{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%f')}"


def rollback(
    spec: PipelineSpec, to: str, *, reason: str, root: str | None = None, run_id: str = "",
    replacing: str | None = None,
) -> Decision:
    """Certify an older generation again, as a new audited decision.

    ``to`` is the id of a generation certified before (as ``explain`` and the view show it:
    an interval key does not say which of its generations the operator reviewed). Intervals
    after it stop being in force (until a later gate certifies them again). ``replacing``: the
    generation the operator saw in force for that interval; when given, the rollback is
    refused if another decision has put something else in force since. The tables themselves
    are never restored: consumers simply time-travel to the re-instated versions.
    """
    if not reason.strip():
        raise CertificationError("rollback needs a reason")
    log = decisions(spec, root=root)
    targets = [d for d in log if d.certified and d.generation_id == to]
    if not targets:
        by_interval = sorted({d.generation_id for d in log if d.certified and d.interval == to})
        if by_interval:
            raise CertificationError(
                f"{spec.name}: --to names a generation, not an interval: {to!r} was certified as "
                f"{', '.join(by_interval)}; name the one you reviewed (`lockstep explain {spec.name} --date {to}`)",
                retryable=False)
        raise CertificationError(f"{spec.name}: no certified generation {to!r} to roll back to; "
                                 f"certified: {sorted({d.generation_id for d in log if d.certified})}", retryable=False)
    target = targets[-1]
    active = active_certifications(spec, log=log)
    newest = current_certified(spec, log=log)
    if replacing is not None and (newest is None or newest.generation_id != replacing):
        raise CertificationError(
            f"{spec.name}: you reviewed {replacing} in force, but "
            + (f"{newest.generation_id} ({newest.kind}, log version {newest.log_version})" if newest else "nothing")
            + " is in force now: a newer decision intervened; review it and decide again", retryable=False)
    own = active.get(target.interval)
    revoked = sorted(k for k, d in active.items() if d.interval_start > target.interval_start)
    if own is not None and own.generation_id == target.generation_id and not revoked:
        raise CertificationError(f"{spec.name}: {target.generation_id} is already in force for {target.interval} and "
                                 "no later interval is: nothing to roll back", retryable=False)
    now = datetime.now(UTC)
    reviewed = {"to": target.generation_id, "to_decision": target.decision_id, "to_digest": target.digest,
                "replaced": None if own is None else own.generation_id,
                "in_force": None if newest is None else newest.generation_id, "revokes": revoked}
    decision = Decision(
        decision_id=_decision_id(spec, target.interval, now), pipeline=spec.name, interval=target.interval,
        interval_start=target.interval_start, generation=target.generation, status="certified", kind="rollback",
        reasons=[], reason=reason, who=who_am_i(), decided_at=now, run_id=run_id or _manual_run_id("rollback"),
        spec_hash=spec.spec_hash(), suites_hash=target.suites_hash, target=target.decision_id,
        bindings={**target.bindings, "reviewed": reviewed},
    )
    return record_decision(spec, decision, root=root)


def override(
    spec: PipelineSpec, interval: Interval, *, reason: str, generation: str, until: datetime | None = None,
    root: str | None = None, run_id: str = "", reinstate_older: bool = False,
) -> Decision:
    """Certify the interval's blocked ``generation`` despite its block, optionally until ``until``.

    Bound to what the operator reviewed: ``generation`` must be the generation of the
    interval's newest decision, a block (``explain`` and the view show its id). Refused when
    another decision came after it: a newer block (override that one, having reviewed it) or
    a certification (the interval was fixed: re-instating the older, blocked generation over
    it needs ``reinstate_older``, and says so). The decision records the reasons it overrides;
    after ``until`` it stops counting and the previous certification of the interval (if
    any) is in force again.
    """
    if not reason.strip():
        raise CertificationError("override needs a reason")
    now = datetime.now(UTC)
    if until is not None:
        until = until if until.tzinfo else until.replace(tzinfo=UTC)
        if until <= now:
            raise CertificationError(f"override expiry {until} is in the past")
    mine = [d for d in decisions(spec, root=root) if d.interval == interval.key]
    if not mine:
        raise CertificationError(f"{spec.name}: no decision about {interval.key} yet; run `lockstep certify` first")
    named = [d for d in mine if d.generation_id == generation and d.kind == "gate" and not d.certified]
    if not named:
        blocks = sorted({d.generation_id for d in mine if not d.certified})
        raise CertificationError(
            f"{spec.name}: {interval.key}: no blocked generation {generation!r} to override"
            + (f" (blocked: {', '.join(blocks)})" if blocks else f": {interval.key} was never blocked"),
            retryable=False)
    last = named[-1]
    after = [d for d in mine if _order(d) > _order(last)]
    note = ""
    if after:
        newest = after[-1]
        what = (f"{newest.kind} {newest.status} of {newest.generation_id} (log version {newest.log_version}, "
                f"by {newest.who or 'unknown'})")
        certified_since = [d for d in after if d.certified]
        if not certified_since:
            raise CertificationError(
                f"{spec.name}: {interval.key}: a newer decision intervened after the block of {generation}: {what}; "
                "review it (`lockstep explain`) and override the generation it names", retryable=False)
        if not reinstate_older:
            raise CertificationError(
                f"{spec.name}: {interval.key}: {generation} is older than a certification of the same interval "
                f"({what}); overriding it would re-instate the older, blocked data. Pass --reinstate-older to do "
                "exactly that", retryable=False)
        note = f"re-instates {generation} over the newer {certified_since[-1].generation_id}"
    reviewed = {"blocked_decision": last.decision_id, "blocked_digest": last.digest, "generation": generation,
                "reinstates_older": bool(note), "note": note}
    decision = Decision(
        decision_id=_decision_id(spec, interval.key, now), pipeline=spec.name, interval=interval.key,
        interval_start=interval.start, generation=last.generation, status="certified", kind="override",
        reasons=last.reasons, reason=reason, who=who_am_i(), decided_at=now,
        run_id=run_id or _manual_run_id("override"), spec_hash=spec.spec_hash(), suites_hash=last.suites_hash,
        expires_at=until, target=last.decision_id, bindings={**last.bindings, "reviewed": reviewed},
    )
    return record_decision(spec, decision, root=root)


# --------------------------------------------------------------------------- explain
def explain(spec: PipelineSpec, interval: Interval, *, root: str | None = None) -> dict[str, Any]:
    """A readable account of an interval: its decisions, every failed check (region, table,
    keys or columns, observed vs threshold) and the drift table (region x column)."""
    import polars as pl

    from pipelines.checks import load_results

    root_ = spec.control_root(root)
    opts = spec.control_options()
    mine = [d for d in decisions(spec, root=root) if d.interval == interval.key]
    df = load_results(root_, spec.name, interval.key, storage_options=opts)
    last = mine[-1] if mine else None
    run_id = last.run_id if last is not None and last.kind == "gate" else None
    rec = df.filter(pl.col("stage") != "validation")
    if run_id is None and rec.height:
        run_id = rec.sort("recorded_at")["run_id"][-1]
    rec = rec.filter(pl.col("run_id") == (run_id or ""))
    # a reconciliation re-states the validation results its generation rests on (bound to
    # their versions); only without one do the newest validation results stand in
    val = (df.filter(pl.col("stage") == "validation").sort("recorded_at")
           .unique(subset=["region", "table", "check_id"], keep="last", maintain_order=True))
    rows = (rec.to_dicts() if rec.height else val.to_dicts()) if df.height else []
    failed = []
    drift: dict[str, dict[str, dict[str, Any]]] = {}
    for r in rows:
        details = json.loads(r["details"] or "{}")
        if r["check_type"] == "drift":
            cell = {"fail": not r["success"]}
            for c in details.get("comparisons", []):
                tag = "pooled" if c["against"] == "other regions" else "window"
                cell[f"psi_{tag}"] = c["psi"]
                cell[f"ks_{tag}"] = c["ks"]
            drift.setdefault(r["region"], {})[details.get("column", r["check_id"])] = cell
        if not r["success"]:
            failed.append({
                "check_id": r["check_id"], "check_type": r["check_type"], "stage": r["stage"], "region": r["region"],
                "table": r["table"], "policy": r["policy"], "blocking": r["blocking"], "message": r["message"],
                "observed": json.loads(r["observed"] or "null"), "threshold": json.loads(r["threshold"] or "null"),
                "details": details,
            })
    active = active_certifications(spec, root=root)
    return {
        "pipeline": spec.name,
        "interval": interval.key,
        "run_id": run_id,
        "in_force": active[interval.key].generation_id if interval.key in active else None,
        "decisions": [
            {"decision_id": d.decision_id, "status": d.status, "kind": d.kind, "generation_id": d.generation_id,
             "who": d.who, "decided_at": d.decided_at, "run_id": d.run_id, "reason": d.reason,
             "expires_at": d.expires_at, "blocking_reasons": len(d.reasons), "log_version": d.log_version,
             "digest": d.digest}
            for d in mine
        ],
        "failed": sorted(failed, key=lambda f: (not f["blocking"], f["check_id"], f["region"])),
        "earlier_blocks": [
            {"decision_id": d.decision_id, "decided_at": d.decided_at, "generation_id": d.generation_id,
             "reasons": d.reasons}
            for d in mine[:-1] if not d.certified
        ],
        "drift": drift,
    }
