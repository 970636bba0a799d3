"""Generations, gate decisions, the certification log and certified reads.

A *generation* is one interval's snapshot across all regions: ``{region/layer/table: Delta
version}``. The gate looks at the interval's check results and writes one decision to
``<root>/<pipeline>/_lockstep/certifications`` (Delta, append-only, one commit per decision,
so all regions of a generation are certified at once or not at all). Consumers read through
:func:`read_certified`, which time-travels each table to its certified version.

Example::

    decision = gate(spec, Interval.for_date("2026-01-01"), results, root=root, run_id="r1")
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
from pipelines.spec import Interval, PipelineSpec
from pipelines.storage import append_rows, lockstep_uri, read_table, table_uri, table_version

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
})


@dataclass(frozen=True)
class Generation:
    interval: str
    members: dict[str, int]

    @property
    def id(self) -> str:
        digest = hashlib.sha256(json.dumps(self.members, sort_keys=True).encode()).hexdigest()[:10]
        return f"{self.interval}.{digest}"

    def version(self, region: str, layer: str, table: str) -> int | None:
        return self.members.get(f"{region}/{layer}/{table}")


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
        )


def who_am_i() -> str:
    """The deciding user: an Airflow user when a task says so, else the OS user."""
    return os.environ.get("LOCKSTEP_ACTOR") or getpass.getuser()


def capture_generation(spec: PipelineSpec, interval: Interval, *, root: str | None = None) -> Generation:
    """The current Delta version of every (region, table) of the pipeline."""
    root = spec.root(root)
    opts = spec.storage.resolved_options()
    members: dict[str, int] = {}
    for region in spec.regions:
        for t in spec.tables:
            v = table_version(table_uri(root, spec.name, region, t.layer, t.name), opts)
            if v is not None:
                members[f"{region}/{t.layer}/{t.name}"] = v
    return Generation(interval.key, members)


def reasons_of(results: list[CheckResult]) -> list[dict[str, Any]]:
    return [
        {"check_id": r.check_id, "check_type": r.check_type, "region": r.region, "table": r.table,
         "message": r.message, "observed": r.observed, "threshold": r.threshold}
        for r in results if r.blocking
    ]


def record_decision(spec: PipelineSpec, decision: Decision, *, root: str | None = None) -> Decision:
    """Write a decision in one commit to the certification log (before it takes effect)."""
    frame = pl.DataFrame([decision.to_row()], schema=DECISION_SCHEMA)
    append_rows(lockstep_uri(spec.root(root), spec.name, CERTIFICATIONS), frame, spec.storage.resolved_options())
    return decision


def gate(
    spec: PipelineSpec, interval: Interval, results: list[CheckResult], *, root: str | None = None,
    run_id: str = "", generation: Generation | None = None,
) -> Decision:
    """Certify the interval's generation when no result blocks, else record the block."""
    gen = generation or capture_generation(spec, interval, root=root)
    missing = [
        f"{region}/{t.layer}/{t.name}" for region in spec.regions for t in spec.tables
        if t.layer != "quarantine" and f"{region}/{t.layer}/{t.name}" not in gen.members
    ]
    reasons = reasons_of(results)
    if missing:
        reasons.append({"check_id": "generation.complete", "check_type": "generation", "region": "*",
                        "table": "*", "message": f"tables missing: {missing}", "observed": missing, "threshold": []})
    now = datetime.now(UTC)
    decision = Decision(
        decision_id=f"{spec.name}:{interval.key}:{now.strftime('%Y%m%dT%H%M%S%f')}",
        pipeline=spec.name, interval=interval.key, interval_start=interval.start, generation=gen,
        status="blocked" if reasons else "certified", kind="gate", reasons=reasons, who=who_am_i(),
        decided_at=now, run_id=run_id, spec_hash=spec.spec_hash(),
    )
    return record_decision(spec, decision, root=root)


def decisions(spec: PipelineSpec, *, root: str | None = None) -> list[Decision]:
    """Every decision, oldest first."""
    uri = lockstep_uri(spec.root(root), spec.name, CERTIFICATIONS)
    opts = spec.storage.resolved_options()
    if table_version(uri, opts) is None:
        return []
    df = read_table(uri, storage_options=opts).sort("decided_at").collect()
    return [Decision.from_row(r) for r in df.iter_rows(named=True)]


def current_certified(spec: PipelineSpec, *, root: str | None = None, at: str | None = None) -> Decision | None:
    """The generation in force: the newest certified interval (or the one ``at`` names:
    a generation id or an interval key)."""
    certified = [d for d in decisions(spec, root=root) if d.certified]
    if at is not None:
        certified = [d for d in certified if at in (d.generation_id, d.interval)]
    if not certified:
        return None
    return max(certified, key=lambda d: (d.interval_start, d.decided_at))


def read_certified(
    spec: PipelineSpec, table: str, region: str, *, at: str | None = None, root: str | None = None,
    max_staleness: timedelta | None = None,
) -> pl.LazyFrame:
    """The certified interval of ``table`` in ``region``, at its certified Delta version.

    Never returns uncertified data: with no certified generation it raises
    :class:`CertificationError`. ``max_staleness`` fails the read when the generation in
    force is older than that (measured from its interval's end to now).
    """
    decision = current_certified(spec, root=root, at=at)
    if decision is None:
        raise CertificationError(f"{spec.name}: no certified generation{f' matching {at!r}' if at else ''}")
    t = spec.table(table)
    version = decision.generation.version(region, t.layer, t.name)
    if version is None:
        raise CertificationError(f"{spec.name}: generation {decision.generation_id} has no {region}/{t.path}")
    if max_staleness is not None:
        age = datetime.now(UTC) - decision.interval_start
        if age > max_staleness + (timedelta(hours=1) if spec.granularity == "hour" else timedelta(days=1)):
            raise CertificationError(
                f"{spec.name}: newest certified generation {decision.generation_id} is {age} old, "
                f"over the staleness budget {max_staleness}",
                retryable=False,
            )
    root_ = spec.root(root)
    iv = Interval.for_date(decision.interval_start.date(), spec.granularity, decision.interval_start.hour)
    return read_table(
        table_uri(root_, spec.name, region, t.layer, t.name), version=version,
        partition=iv.partition(t.partition_by), storage_options=spec.storage.resolved_options(),
    )
