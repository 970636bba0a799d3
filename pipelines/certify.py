"""Generations, gate decisions, the certification log and certified reads.

A *generation* is one interval's snapshot across all regions: ``{region/layer/table: Delta
version}``. The gate looks at the interval's check results and writes one decision to
``<root>/<pipeline>/_lockstep/certifications`` (Delta, append-only, one commit per decision,
so all regions of a generation are certified at once or not at all). Consumers read through
:func:`read_certified`, which time-travels each table to its certified version.

Decisions are data, never edited: ``gate`` (certify or block), ``override`` (certify
despite a block, optionally until an expiry) and ``rollback`` (re-point to an older
generation; tables are never RESTOREd) each append one row, with who, when, the run id and
the reason. The generation *in force* is folded from the log (:func:`active_certifications`):
per interval the newest live certifying decision; a rollback revokes every interval after its
target; an expired override no longer counts.

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
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from pipelines.checks import CheckResult
from pipelines.errors import CertificationError
from pipelines.generation import Generation, generation_of
from pipelines.spec import Interval, PipelineSpec
from pipelines.storage import OpenTables, decision_tables, read_table, scan_partition, table_version

CERTIFICATIONS = "certifications"
CODE_VERSION = "0.1.0"

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

    @property
    def certified(self) -> bool:
        return self.status == "certified"

    @property
    def generation_id(self) -> str:
        return self.generation.id

    def to_row(self) -> dict[str, Any]:
        row = asdict(self)
        row.update(
            generation_id=self.generation.id,
            generation=json.dumps(self.generation.members, sort_keys=True),
            reasons=json.dumps(self.reasons, default=str),
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
        )

    def live(self, now: datetime | None = None) -> bool:
        """Not expired (an override with an expiry stops counting after it)."""
        return self.expires_at is None or self.expires_at > (now or datetime.now(UTC))


def who_am_i() -> str:
    """The deciding user: an Airflow user when a task says so, else the OS user."""
    return os.environ.get("LOCKSTEP_ACTOR") or getpass.getuser()


def suites_hash(spec: PipelineSpec) -> str:
    """Hash of the expectation suites the pipeline's tables use (empty when there are none)."""
    d = spec.suites_dir()
    h = hashlib.sha256()
    found = False
    for t in spec.tables:
        p = d / f"{t.suite_name}.json"
        if p.exists():
            found = True
            h.update(t.suite_name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:16] if found else ""


def _decision_id(spec: PipelineSpec, interval_key: str, now: datetime) -> str:
    return f"{spec.name}:{interval_key}:{now.strftime('%Y%m%dT%H%M%S%f')}"


def reasons_of(results: list[CheckResult]) -> list[dict[str, Any]]:
    return [
        {"check_id": r.check_id, "check_type": r.check_type, "region": r.region, "table": r.table,
         "message": r.message, "observed": r.observed, "threshold": r.threshold}
        for r in results if r.blocking
    ]


def record_decision(spec: PipelineSpec, decision: Decision, *, root: str | None = None,
                    tables: OpenTables | None = None) -> Decision:
    """Write a decision in one commit to the certification log (before it takes effect).
    ``tables``: the decision's open control tables (the append commits through them)."""
    frame = pl.DataFrame([decision.to_row()], schema=DECISION_SCHEMA)
    (tables or decision_tables(spec.control_options())).append(spec.lockstep_uri(CERTIFICATIONS, root), frame)
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
    now = datetime.now(UTC)
    decision = Decision(
        decision_id=_decision_id(spec, interval.key, now),
        pipeline=spec.name, interval=interval.key, interval_start=interval.start, generation=gen,
        status="blocked" if reasons else "certified", kind="gate", reasons=reasons, who=who_am_i(),
        decided_at=now, run_id=run_id, spec_hash=spec.spec_hash(), suites_hash=suites_hash(spec),
    )
    return record_decision(spec, decision, root=root, tables=tables)


def decisions(spec: PipelineSpec, *, root: str | None = None) -> list[Decision]:
    """Every decision, oldest first."""
    uri = spec.lockstep_uri(CERTIFICATIONS, root)
    opts = spec.control_options()
    dt = decision_tables(opts).get(uri)  # the newest version, opened once per decision
    if dt is None:
        return []
    df = scan_partition(dt, {}, opts).sort("decided_at").collect()
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
                      log: list[Decision] | None = None) -> Decision | None:
    """The generation in force: the newest certified interval (or the one ``at`` names:
    a generation id or an interval key). ``log``: the decision log, when already read."""
    active = list(active_certifications(spec, root=root, log=log).values())
    if at is not None:
        active = [d for d in active if at in (d.generation_id, d.interval)]
    if not active:
        return None
    return max(active, key=lambda d: (d.interval_start, d.decided_at))


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
    decision = current_certified(spec, root=root, at=at, log=log)
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
    return read_table(uri, version=version, partition=part, storage_options=spec.region_options(region))


def _pinned_generation(spec: PipelineSpec, log: list[Decision], in_force: Decision, t: Any, region: str,
                       consumer: str, pinned: str, uri: str, part: dict[str, str]) -> Decision:
    """For a consumer pinned to a feature version: the newest certified generation of the
    interval, from the one in force back, whose ``region`` data of ``t`` that version computed
    (a bump certified later does not take its data away; a rollback's skipped decisions and
    generations whose files maintenance removed do not count)."""
    from pipelines.features import pinned_version_problem

    log = [d for d in log if d.interval == in_force.interval and d.decided_at <= in_force.decided_at]
    by_id = {d.decision_id: d for d in log}
    skipped = {d.decision_id for r in log if r.kind == "rollback" and r.target in by_id
               for d in log if by_id[r.target].decided_at < d.decided_at < r.decided_at}
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
) -> Decision:
    """Certify an older generation again, as a new audited decision.

    ``to`` is a generation id or an interval key that was certified before. Intervals after
    it stop being in force (until a later gate certifies them again). The tables themselves
    are never restored: consumers simply time-travel to the re-instated versions.
    """
    if not reason.strip():
        raise CertificationError("rollback needs a reason")
    log = decisions(spec, root=root)
    targets = [d for d in log if d.certified and to in (d.generation_id, d.interval)]
    if not targets:
        raise CertificationError(f"{spec.name}: no certified generation {to!r} to roll back to; "
                                 f"certified: {sorted({d.generation_id for d in log if d.certified})}")
    target = targets[-1]
    now = datetime.now(UTC)
    decision = Decision(
        decision_id=_decision_id(spec, target.interval, now), pipeline=spec.name, interval=target.interval,
        interval_start=target.interval_start, generation=target.generation, status="certified", kind="rollback",
        reasons=[], reason=reason, who=who_am_i(), decided_at=now, run_id=run_id or _manual_run_id("rollback"),
        spec_hash=spec.spec_hash(), suites_hash=suites_hash(spec), target=target.decision_id,
    )
    return record_decision(spec, decision, root=root)


def override(
    spec: PipelineSpec, interval: Interval, *, reason: str, until: datetime | None = None,
    root: str | None = None, run_id: str = "",
) -> Decision:
    """Certify the interval's blocked generation despite its block, optionally until ``until``.

    The decision records the reasons it overrides; after ``until`` it stops counting and the
    previous certification of the interval (if any) is in force again.
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
    blocked = [d for d in mine if not d.certified]
    if not blocked:
        raise CertificationError(f"{spec.name}: {interval.key} was never blocked; nothing to override")
    last = blocked[-1]
    decision = Decision(
        decision_id=_decision_id(spec, interval.key, now), pipeline=spec.name, interval=interval.key,
        interval_start=interval.start, generation=last.generation, status="certified", kind="override",
        reasons=last.reasons, reason=reason, who=who_am_i(), decided_at=now,
        run_id=run_id or _manual_run_id("override"), spec_hash=spec.spec_hash(), suites_hash=suites_hash(spec),
        expires_at=until, target=last.decision_id,
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
             "expires_at": d.expires_at, "blocking_reasons": len(d.reasons)}
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
