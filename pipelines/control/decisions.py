"""The decision log: ``<control_root>/<pipeline>/_lockstep/certifications``.

Delta, append-only, one commit per decision: ``gate`` (certify or block), ``override``
(certify despite a block, optionally until an expiry) and ``rollback`` (re-point to an
older generation) each append one :class:`Decision`, with who, when, the run id and the
reason, before it takes effect; rows are never edited. Each row carries the Delta version of
the commit that holds it (``log_version``): :func:`decisions` returns the log in that order
(never a host's clock), which is the order "in force" is folded in
(:func:`pipelines.certify.active_certifications`).

Every decision is bound to what it decides on (:attr:`Decision.bindings`, hashed into
:attr:`Decision.digest`): the suites by content, each derived version's input versions, each
member's data files by content hash; an override to the block it reviewed, a rollback to the
generation it names and what it replaced.

Example::

    log = decisions(spec)
    [(d.log_version, d.kind, d.status, d.generation_id) for d in log]
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import polars as pl

from pipelines.control.tables import CERTIFICATIONS_TABLE
from pipelines.errors import CertificationError
from pipelines.generation import Generation
from pipelines.spec import PipelineSpec
from pipelines.storage import OpenTables
from pipelines.version import CODE_VERSION

CERTIFICATIONS = CERTIFICATIONS_TABLE.name
#: the log's columns (the registry's, :mod:`pipelines.control.tables`)
DECISION_SCHEMA = CERTIFICATIONS_TABLE.schema


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

    @property
    def approvers(self) -> list[str]:
        """Who approved the decision (an override, a rollback taken with approvals), in order."""
        return list((self.bindings.get("approval") or {}).get("approvers") or [])

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

    @property
    def pipeline_wide(self) -> bool:
        """A rollback that moved the pipeline's generation in force (``lockstep rollback
        --pipeline-wide``): it revokes every interval after its own. A rollback is per interval
        unless it says so (rows recorded before rollbacks carried a scope were pipeline-wide)."""
        return self.kind == "rollback" and (self.bindings.get("reviewed") or {}).get("scope", "pipeline") == "pipeline"

    def live(self, now: datetime | None = None) -> bool:
        """Not expired (an override with an expiry stops counting after it)."""
        return self.expires_at is None or self.expires_at > (now or datetime.now(UTC))


def decision_id(spec: PipelineSpec, interval_key: str, now: datetime) -> str:
    """A new decision's id: the pipeline, the interval and the deciding host's clock, made unique."""
    # unique whatever the deciding host's clock says (two hosts, one skewed, may share a tick)
    return f"{spec.name}:{interval_key}:{now.strftime('%Y%m%dT%H%M%S%f')}-{uuid.uuid4().hex[:8]}"


def record_decision(spec: PipelineSpec, decision: Decision, *, root: str | None = None,
                    tables: OpenTables | None = None) -> Decision:
    """Write a decision in one commit to the certification log (before it takes effect), as
    exactly the commit its ``log_version`` names: its place in the log is the log's own order.
    ``tables``: the decision's open control tables (the append commits through them)."""

    def row(version: int) -> dict[str, Any]:
        decision.log_version = version
        return decision.to_row()

    CERTIFICATIONS_TABLE.append_in_order(spec.lockstep_uri(CERTIFICATIONS, root), row, spec.control_options(),
                                         tables=tables)
    return decision


@dataclass(frozen=True)
class LogEntry:
    """What folding "in force" needs of one decision of the log (:func:`log_entries`), without
    its generation, reasons or bindings: read from a few columns, cheap at any log length. It
    answers :attr:`certified`, :attr:`pipeline_wide` and :meth:`live` as its :class:`Decision`
    does; :func:`decisions_by_id` reads the decisions themselves."""

    decision_id: str
    interval: str
    interval_start: datetime
    status: str
    kind: str
    expires_at: datetime | None
    log_version: int | None
    #: a rollback's scope as its bindings record it (``reviewed.scope``; a rollback recorded
    #: before rollbacks carried one was pipeline-wide); None for any other kind
    scope: str | None = None

    @property
    def certified(self) -> bool:
        return self.status == "certified"

    @property
    def pipeline_wide(self) -> bool:
        return self.kind == "rollback" and self.scope == "pipeline"

    def live(self, now: datetime | None = None) -> bool:
        return self.expires_at is None or self.expires_at > (now or datetime.now(UTC))


#: the columns :func:`log_entries` reads (bindings only of rollbacks, for their scope)
ENTRY_COLUMNS = ("decision_id", "interval", "interval_start", "status", "kind", "expires_at", "log_version",
                 "decided_at")


def _log_frame(spec: PipelineSpec, root: str | None, columns: list[str] | None = None,
               where: pl.Expr | None = None) -> pl.DataFrame | None:
    """The decision log's rows (``columns`` of them, ``where`` they match) in the log's
    order, after checking the log's numbering; None when there is no log yet."""
    uri = spec.lockstep_uri(CERTIFICATIONS, root)
    opts = spec.control_options()
    dt = CERTIFICATIONS_TABLE.open(uri, opts)  # the newest version, opened once per decision
    if dt is None:
        return None
    lf = CERTIFICATIONS_TABLE.scan(dt, opts)
    names = lf.collect_schema().names()
    if "log_version" not in names:
        lf = lf.with_columns(log_version=pl.lit(None, pl.Int64))
    if columns is not None:
        lf = lf.select([c for c in columns if c in names or c == "log_version"])
    if where is None:
        df = numbers = lf.collect()
    else:  # the numbering is checked over the whole log, whatever rows are read
        numbers, df = pl.collect_all([lf.select("log_version"), lf.filter(where)])
    _check_numbering(uri, numbers, dt.version())
    # commit order; rows written before decisions carried their log version keep their old order, first
    return df.sort(pl.col("log_version").is_not_null(), "log_version", "decided_at", nulls_last=False)


def _check_numbering(uri: str, df: pl.DataFrame, version: int) -> None:
    numbered = df.filter(pl.col("log_version").is_not_null())
    dupes = numbered.filter(pl.col("log_version").is_duplicated())["log_version"].unique().sort().to_list()
    if dupes or (numbered.height and int(numbered["log_version"].max()) > version):  # type: ignore[arg-type]
        raise CertificationError(
            f"{uri}: the decision log is inconsistent (log versions {dupes or 'beyond the table version'} are "
            "claimed by more than one decision or by no commit): it was written outside Lockstep; nothing can be "
            "read through it until it is repaired", retryable=False)


def log_entries(spec: PipelineSpec, *, root: str | None = None) -> list[LogEntry]:
    """Every decision as a :class:`LogEntry`, oldest first (the log's order, as
    :func:`decisions`): a few columns of each row, and the bindings of rollbacks alone."""
    df = _log_frame(spec, root, [*ENTRY_COLUMNS, "bindings"])
    if df is None:
        return []
    df = df.with_columns(bindings=pl.when(pl.col("kind") == "rollback").then(pl.col("bindings")))
    out = []
    for r in df.iter_rows(named=True):
        scope = None
        if r["kind"] == "rollback":
            scope = (json.loads(r["bindings"] or "{}").get("reviewed") or {}).get("scope", "pipeline")
        out.append(LogEntry(r["decision_id"], r["interval"], r["interval_start"], r["status"], r["kind"],
                            r.get("expires_at"), r["log_version"], scope))
    return out


def decisions_by_id(spec: PipelineSpec, ids: list[str], *, root: str | None = None) -> dict[str, Decision]:
    """The decisions ``ids`` names (those of :func:`log_entries`), read whole, by id."""
    if not ids:
        return {}
    df = _log_frame(spec, root, where=pl.col("decision_id").is_in(list(ids)))
    return {} if df is None else {r["decision_id"]: Decision.from_row(r) for r in df.iter_rows(named=True)}


def decisions(spec: PipelineSpec, *, root: str | None = None) -> list[Decision]:
    """Every decision, oldest first."""
    df = _log_frame(spec, root)
    if df is None:
        return []
    return [Decision.from_row(r) for r in df.iter_rows(named=True)]


def log_order(d: Decision) -> int:
    """A decision's place in the log (-1: written before decisions carried it)."""
    return -1 if d.log_version is None else d.log_version
