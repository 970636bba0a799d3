"""Reads through certifications: what is in force, and the certified data itself.

"In force" is folded from the decision log (:mod:`pipelines.control.decisions`) in the log's
own order, never a host's clock (:func:`active_certifications`): per interval the newest live
certifying decision; a rollback re-instates its target for its own interval only, and a
pipeline-wide rollback also revokes every interval after it; an expired override no longer
counts. What consumers read "now" is the newest certified interval that has closed
(:func:`current_certified`). :func:`read_certified` time-travels a region's table to the
version certified, checks its files against the content hashes the certification bound, and
never returns uncertified data; a consumer pinned to a feature version reads the newest
certified generation that version computed.

Example::

    lf = read_certified(spec, "card_features", "eu-west")
    current_certified(spec).generation_id
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import polars as pl

from pipelines.control.decisions import Decision, LogEntry, decisions, log_entries, log_order
from pipelines.control.erasures import erasure_of
from pipelines.control.maintenance import maintenance_after
from pipelines.errors import CertificationError
from pipelines.spec import PipelineSpec
from pipelines.storage import read_table

#: a decision of the log, whole or as its :class:`LogEntry`
F = TypeVar("F", Decision, LogEntry)


def active_certifications(
    spec: PipelineSpec, *, root: str | None = None, now: datetime | None = None,
    log: list[Decision] | None = None,
) -> dict[str, Decision]:
    """Interval -> the certifying decision in force for it, folded from the log.

    Per interval the newest live certifying decision counts (gate, override or rollback): a
    rollback re-instates its target generation for its interval; a pipeline-wide one
    (:attr:`Decision.pipeline_wide`) also revokes every later interval certified before it.
    """
    return fold(log if log is not None else decisions(spec, root=root), now)


def active_entries(spec: PipelineSpec, *, root: str | None = None, now: datetime | None = None
                   ) -> dict[str, LogEntry]:
    """:func:`active_certifications` from a few columns of the log (:func:`log_entries`):
    interval -> the entry of the decision in force, whose :class:`Decision` a caller reads
    by id (:func:`decisions_by_id`) where it needs it. What a decision asks about the
    intervals before its own, without decoding the whole log's generations and bindings."""
    return fold(log_entries(spec, root=root), now)


def fold(log: Iterable[F], now: datetime | None = None) -> dict[str, F]:
    """Interval -> the certifying decision in force, from the log in its order (see
    :func:`active_certifications`)."""
    now = now or datetime.now(UTC)
    stacks: dict[str, list[F]] = {}
    for d in log:
        if d.pipeline_wide:
            for key in [k for k, st in stacks.items() if st[0].interval_start > d.interval_start]:
                del stacks[key]
            stacks.setdefault(d.interval, []).append(d)
        elif d.certified:  # a gate, an override or a rollback of one interval
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
    return max(active, key=lambda d: (d.interval_start, log_order(d)))


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
                                      uri, part, root=root)
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
                       consumer: str, pinned: str, uri: str, part: dict[str, str], *, root: str | None = None
                       ) -> Decision:
    """For a consumer pinned to a feature version: the newest certified generation of the
    interval, from the one in force back, whose ``region`` data of ``t`` that version computed
    (a bump certified later does not take its data away; a rollback's skipped decisions and
    generations whose files maintenance removed do not count)."""
    from pipelines.features import pinned_version_problem

    log = [d for d in log if d.interval == in_force.interval and log_order(d) <= log_order(in_force)]
    by_id = {d.decision_id: d for d in log}
    skipped = {d.decision_id for r in log if r.kind == "rollback" and r.target in by_id
               for d in log if log_order(by_id[r.target]) < log_order(d) < log_order(r)}
    candidates = [in_force] + [d for d in reversed(log) if d.certified and d.kind != "rollback"
                               and d.decision_id not in skipped and d.decision_id != in_force.decision_id]
    opts = spec.region_options(region)
    seen: list[str] = []
    for d in candidates:
        version = d.generation.version(region, t.layer, t.name)
        if version is None:
            continue
        if not _partition_files_present(uri, version, part, opts):
            why = removed_by_maintenance(spec.control_root(root), spec.name, uri, version, spec.control_options())
            seen.append(f"{d.generation_id}: " + (why or "files removed by maintenance"))
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


def removed_by_maintenance(control_root: str, pipeline: str, uri: str, version: int,
                           storage_options: dict[str, str] | None = None) -> str | None:
    """Why ``version`` of the table at ``uri`` can no longer be read, from the maintenance log
    (``lockstep maintain`` removed its files: outside the rollback window, nothing protected
    it), or None when it was never removed."""
    rows = maintenance_after(control_root, pipeline, uri, version, storage_options)
    for row in rows.iter_rows(named=True):
        if version not in json.loads(row["kept_versions"]):
            erased = erasure_of(control_root, pipeline, uri, version, storage_options)
            if erased is not None:
                return (f"{uri}: version {version} was removed by `lockstep maintain` at {row['ran_at']:%Y-%m-%d %H:%M} "
                        f"UTC after erasure {erased['erasure_id']} (of {erased['values_count']} {erased['column']} "
                        f"value(s), by {erased['who']} at {erased['at']:%Y-%m-%d %H:%M} UTC: {erased['reason']}): "
                        "it held erased rows, so no certification, rollback window or pin keeps it")
            return (f"{uri}: version {version} was removed by `lockstep maintain` at {row['ran_at']:%Y-%m-%d %H:%M} "
                    f"UTC: it was outside the rollback window ({row['rollback_window']}) and no certification in "
                    "force or unexpired override referred to it")
    return None
