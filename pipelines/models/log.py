"""The release log: ``<control root>/<pipeline>/_lockstep/releases``, one ordered control table.

Each row is one commit and carries its Delta version (``log_version``); the log is folded in
that order, never by a clock. Its rows, by ``kind``:

* ``promote`` / ``rollback``: a release decision, in force for every region from
  ``effective_from`` on (a rollback names the release it re-instates, ``target``);
* ``refused``: a promotion the gate refused, with every reason (never in force; audited like
  a blocked gate);
* ``claim``: the release interval ``interval`` is scored with, committed by its first scorer
  (``region``). Every later scorer of the interval uses the claimed release, and a release
  may only take effect after every claimed interval, so no interval is scored with two.

Every append goes through :func:`append_decision`, which builds the row from the log *as of
the commit before it* (a lost race builds it again from the newer log), so a promotion's
check against the claims and a claim's choice of release are both decided on exactly the log
they are committed on top of.

Example::

    log = read_log(spec)
    release_in_force(spec, "2026-01-04", log=log).release_id
    claims(log)["2026-01-04"].release_id       # once some region scored 2026-01-04
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from pipelines.control.tables import RELEASES_TABLE
from pipelines.errors import SpecError
from pipelines.models.registry import models_spec
from pipelines.spec import Interval, PipelineSpec

#: the kinds of row that put a release in force
IN_FORCE_KINDS = ("promote", "rollback")
#: the kinds of row that are release decisions (what ``lockstep release history`` lists)
DECISION_KINDS = ("promote", "rollback", "refused")


@dataclass(frozen=True)
class Release:
    """One row of the release log (a release decision, a refusal or a scoring claim)."""

    release_id: str
    pipeline: str
    model_name: str
    model_version: str
    feature_version: str
    plan_hash: str
    suites: dict[str, Any]
    generations: dict[str, str]
    effective_from: str
    effective_start: datetime
    who: str
    why: str
    kind: str  # promote | rollback | refused | claim
    target: str  # rollback: the release re-instated
    released_at: datetime
    log_version: int
    reasons: list[dict[str, Any]] = field(default_factory=list)  # refused: every reason
    interval: str = ""  # claim: the interval claimed
    region: str = ""  # claim: the region that claimed it first
    replaces: str = ""  # promote, rollback: the release in force it replaced (from)
    evaluated: dict[str, Any] = field(default_factory=dict)  # promote: the evaluation it passed
    #: the approvals the release took effect with (request, requester, approvers, digest), if any
    approval: dict[str, Any] | None = None

    @property
    def in_force_kind(self) -> bool:
        return self.kind in IN_FORCE_KINDS

    def to_json(self) -> dict[str, Any]:
        return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Release:
        def loads(name: str, empty: str) -> Any:
            return json.loads(row.get(name) or empty)

        return cls(
            release_id=row["release_id"], pipeline=row["pipeline"], model_name=row["model_name"],
            model_version=row["model_version"], feature_version=row["feature_version"] or "",
            plan_hash=row["plan_hash"] or "", suites=loads("suites", "{}"), generations=loads("generations", "{}"),
            effective_from=row["effective_from"], effective_start=row["effective_start"], who=row["who"] or "",
            why=row["why"] or "", kind=row["kind"], target=row["target"] or "", released_at=row["released_at"],
            log_version=row["log_version"], reasons=loads("reasons", "[]"), interval=row.get("interval") or "",
            region=row.get("region") or "", replaces=row.get("replaces") or "", evaluated=loads("evaluated", "{}"),
            approval=loads("approval", "null"),
        )


def log_uri(spec: PipelineSpec, root: str | None = None) -> str:
    return spec.lockstep_uri(RELEASES_TABLE.name, root)


def _read(spec: PipelineSpec, root: str | None) -> tuple[list[Release], int]:
    """The whole log in commit order, and the table version it was read at (-1: no table)."""
    opts = spec.control_options()
    dt = RELEASES_TABLE.open(log_uri(spec, root), opts)
    frame = RELEASES_TABLE.scan(dt, opts).collect().sort("log_version")
    return [Release.from_row(row) for row in frame.iter_rows(named=True)], -1 if dt is None else dt.version()


def read_log(spec: PipelineSpec, *, root: str | None = None) -> list[Release]:
    """Every row of the release log (decisions, refusals, claims), in commit order."""
    return _read(spec, root)[0]


def releases(spec: PipelineSpec, *, root: str | None = None, log: list[Release] | None = None) -> list[Release]:
    """Every release put in force (promotions and rollbacks), in commit order."""
    return [r for r in (read_log(spec, root=root) if log is None else log) if r.in_force_kind]


def history(spec: PipelineSpec, *, root: str | None = None, log: list[Release] | None = None) -> list[Release]:
    """Every release decision, refusals included, in commit order (claims left out)."""
    return [r for r in (read_log(spec, root=root) if log is None else log) if r.kind in DECISION_KINDS]


def claims(log: list[Release]) -> dict[str, Release]:
    """Interval key -> the claim that fixed the release it is scored with (the first one)."""
    out: dict[str, Release] = {}
    for r in log:
        if r.kind == "claim":
            out.setdefault(r.interval, r)
    return out


def newest_release(log: list[Release]) -> Release | None:
    """The release in force from the newest ``effective_from`` on: the last one committed
    (releases never take effect before an earlier one's ``effective_from``)."""
    found = [r for r in log if r.in_force_kind]
    return found[-1] if found else None


def release_in_force(spec: PipelineSpec, interval: str | Interval, *, root: str | None = None,
                     log: list[Release] | None = None) -> Release | None:
    """The release in force for ``interval``: folded in commit order, the last release whose
    ``effective_from`` is at or before the interval's start. (What an interval is *scored*
    with is its claim's release, when one was committed: :func:`claims`.)"""
    start = (interval if isinstance(interval, Interval) else spec.interval_at(interval)).start
    in_force = None
    for r in releases(spec, root=root, log=log):
        if r.effective_start <= start:
            in_force = r
    return in_force


def find_release(spec: PipelineSpec, release_id: str, *, root: str | None = None,
                 log: list[Release] | None = None) -> Release:
    """The release (promotion or rollback) named ``release_id``, or a :class:`SpecError`."""
    log = read_log(spec, root=root) if log is None else log
    named = [r for r in log if r.release_id == release_id and r.kind != "claim"]
    if named and not named[0].in_force_kind:
        raise SpecError(f"{spec.name}: {release_id} is a {named[0].kind} promotion, never in force: "
                        + "; ".join(str(x.get("message", x)) for x in named[0].reasons[:3]))
    if not named:
        known = [r.release_id for r in log if r.in_force_kind]
        raise SpecError(f"{spec.name}: no release {release_id!r}" + (f" (releases: {', '.join(known)})" if known else ""))
    return named[0]


def next_unscored(spec: PipelineSpec, log: list[Release]) -> Interval | None:
    """The next interval no region has scored (or is scoring): the one after the newest
    claim; None when nothing was claimed yet."""
    claimed = claims(log)
    if not claimed:
        return None
    newest = max(spec.interval_at(k).start for k in claimed)
    return spec.interval_at(newest + spec.interval_length)


def scored_at_or_after(spec: PipelineSpec, log: list[Release], start: datetime) -> list[str]:
    """The claimed intervals (scored or being scored) that start at or after ``start``."""
    return sorted(k for k in claims(log) if spec.interval_at(k).start >= start)


def append_decision(spec: PipelineSpec, build: Callable[[list[Release], int], dict[str, Any] | None], *,
                    root: str | None = None) -> tuple[Release | None, list[Release]]:
    """Append the row ``build(log, v)`` makes as exactly commit ``v`` of the release log,
    where ``log`` holds every row committed before ``v`` (a lost race calls ``build`` again
    with the newer log). ``build`` may raise (a refusal decided on that log) or return None
    (nothing to append: the log already holds what it wanted). Returns the row appended (or
    None) and the log it was decided on."""
    state: dict[str, Any] = {}
    state["log"], state["seen"] = _read(spec, root)

    class _Nothing(Exception):
        pass

    def row(v: int) -> dict[str, Any]:
        if state["seen"] < v - 1:  # commits landed since the last read: read the newer log
            state["log"], state["seen"] = _read(spec, root)
        before = [r for r in state["log"] if r.log_version < v]
        state["before"] = before
        built = build(before, v)
        if built is None:
            raise _Nothing
        base = {"pipeline": spec.name, "model_name": models_spec(spec).name, "log_version": v, "target": "",
                "suites": "{}", "generations": "{}", "reasons": "[]", "interval": "", "region": "",
                "replaces": "", "evaluated": "{}", "feature_version": "", "plan_hash": "", "why": "", "who": ""}
        return {**base, **built}

    try:
        v = RELEASES_TABLE.append_in_order(log_uri(spec, root), row, spec.control_options())
    except _Nothing:
        return None, state["before"]
    log = read_log(spec, root=root)
    return next(r for r in log if r.log_version == v), state["before"]
