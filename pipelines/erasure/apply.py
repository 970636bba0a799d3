"""Carrying out an erasure: the rows removed in every region, one audited row per region, then the
affected intervals re-validated and re-certified as new generations.

Per region, each table holding the column (raw, features, their quarantine) loses the
subject's rows in one overwrite commit of the partitions holding them (every interval at
once; see :func:`_delete`); the region's ``erase``
row in the erasure log records who, why, the approvals, and per table the rows deleted, the
versions before and after and the intervals touched. A raw table's profile is published again
for every interval touched (its rows, and its source totals less the rows erased, so control
totals hold as if the rows had never been delivered). Then every decided interval whose data
or whose features' lookback the erasure touched is run again through the runner
(:func:`~pipelines.runner.run_interval`): the raw tables skip (same source fingerprint), the
features are recomputed from the erased raw data, validated, reconciled and gated; the
``recertify`` row records each interval's new decision.

The older versions still hold the rows until ``lockstep maintain`` deletes their files
(:mod:`pipelines.maintain`), whatever protected them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
from deltalake import CommitProperties, write_deltalake

from pipelines.control.erasures import record_erasure_event
from pipelines.control.evidence import load, publish_write
from pipelines.erasure.subject import Subject, Target
from pipelines.errors import StorageError
from pipelines.evidence import profile_plan, totals_of
from pipelines.governance import Principal
from pipelines.runner import run_interval
from pipelines.spec import PipelineSpec, partition_key
from pipelines.storage import (
    TableRef,
    interval_app_id,
    open_table,
    partition_file_hashes,
    partition_predicate,
    read_table,
)

OnStep = Callable[[str, str], None]


@dataclass
class Erasure:
    """What an erasure did."""

    erasure_id: str
    column: str
    values_count: int
    values_digest: str
    who: str
    regions: dict[str, dict[str, Any]] = field(default_factory=dict)  # region -> table path -> what
    intervals: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> new decision

    @property
    def rows(self) -> int:
        return sum(t["rows"] for tables in self.regions.values() for t in tables.values())

    def as_json(self) -> dict[str, Any]:
        return {"erasure_id": self.erasure_id, "column": self.column, "values_count": self.values_count,
                "values_digest": self.values_digest, "who": self.who, "rows": self.rows, "regions": self.regions,
                "intervals": self.intervals}


def _quiet(region: str, step: str) -> None:
    return None


#: the commit metadata key that tags an erasure's rewrite of a table with the subject's digest
ERASURE_TAG = "lockstep.erasure"


def _erased_before(dt: Any, digest: str) -> dict[str, Any] | None:
    """The rewrite an earlier (interrupted) run of the same erasure committed to this table,
    found in the table's own log by its tag: a re-run records it instead of finding nothing."""
    for h in dt.history():
        if h.get(ERASURE_TAG) == digest:
            return h
    return None


def _delete(spec: PipelineSpec, target: Target, subject: Subject) -> tuple[dict[str, Any], dict[str, pl.DataFrame]]:
    """Remove the subject's rows from one table: what was done, and the rows removed per interval key.

    Not a Delta ``DELETE``: its predicate (the subject's values) would stay in the table's log.
    The partitions holding the subject's rows are rewritten without them in one overwrite commit
    whose predicate names only those partitions, tagged with the subject's digest
    (:data:`ERASURE_TAG`), so a run killed after this commit and before its ``erase`` row finds
    the commit again when run once more."""
    opts = spec.region_options(target.region)
    dt = open_table(target.uri, opts)
    assert dt is not None
    before = dt.version()
    parts = [c for c in target.table.partition_by if c in ("ds", "hour", "minute")]
    all_parts = list(target.table.partition_by)
    current = read_table(target.uri, version=before, storage_options=opts)
    removed = current.filter(subject.matches()).collect()
    out: dict[str, Any] = {"uri": target.uri, "rows": removed.height, "version_before": before, "version_after": None,
                           "intervals": []}
    if removed.is_empty():
        earlier = _erased_before(dt, subject.digest)
        if earlier is not None:  # this erasure's rewrite committed before an interruption
            out.update(rows=int(earlier.get("lockstep.erased_rows", 0)), version_after=int(earlier["version"]),
                       version_before=int(earlier["version"]) - 1,
                       intervals=json.loads(str(earlier.get("lockstep.erased_intervals", "[]"))), recovered=True)
        return out, {}
    touched = removed.select(all_parts).unique().sort(all_parts) if all_parts else None
    if touched is not None:
        keep = current.join(touched.lazy(), on=all_parts, how="semi").filter(~subject.matches()).collect()
        predicate: str | None = " OR ".join(
            f"({partition_predicate({c: str(v) for c, v in row.items()})})" for row in touched.iter_rows(named=True))
    else:
        keep, predicate = current.filter(~subject.matches()).collect(), None
    by_key = {partition_key({c: str(v) for c, v in zip(parts, key, strict=True)}): frame
              for key, frame in removed.partition_by(parts, as_dict=True).items()} if parts else {}
    intervals = sorted(by_key)
    props = CommitProperties(custom_metadata={ERASURE_TAG: subject.digest, "lockstep.erased_rows": str(removed.height),
                                              "lockstep.erased_intervals": json.dumps(intervals)},
                             max_commit_retries=0)
    try:
        write_deltalake(dt, keep.to_arrow(), mode="overwrite", predicate=predicate,
                        commit_properties=props)
    except Exception as exc:
        raise StorageError(f"{target.uri}: erasure rewrite failed: {str(exc).splitlines()[0]}", uri=target.uri) from exc
    dt.update_incremental()
    out.update(version_after=dt.version(), intervals=intervals)
    return out, by_key


def _minus(a: dict[str, float] | None, *bs: dict[str, float]) -> dict[str, float] | None:
    if a is None:
        return None
    return {k: v - sum(b.get(k, 0.0) for b in bs) for k, v in a.items()}


def _republish(spec: PipelineSpec, target: Target, key: str, removed: pl.DataFrame | None,
               quarantine: tuple[int, pl.DataFrame] | None, *, root: str | None, run_id: str) -> None:
    """Publish a raw (or quarantine) table's profile of interval ``key`` at its version after the erasure."""
    t, region = target.table, target.region
    opts = spec.region_options(region)
    dt = open_table(target.uri, opts)
    assert dt is not None
    iv = spec.interval_at(key)
    part = iv.partition(t.partition_by)
    cols = profile_plan(spec, t)["totals"]
    old = load(spec, [iv.key], root=root, region=region, table=t.name).newest(region, target.layer, t.name, iv.key)
    frame = read_table(target.uri, version=dt.version(), partition=part, storage_options=opts).collect()
    ref = TableRef(target.uri, dt.version(), frame.height, part,
                   files=partition_file_hashes(target.uri, dt.version(), part, opts))
    if target.layer == "quarantine":
        publish_write(spec, region, t, "quarantine", iv, frame, ref, root=root, run_id=run_id)
        return
    gone = totals_of(removed if removed is not None else frame.clear(), cols)
    q_gone = totals_of(quarantine[1], cols) if quarantine else {}
    moved = dict(old.quarantine) if old is not None and old.quarantine else None
    if moved is not None and quarantine is not None:
        moved.update(version=quarantine[0], rows=int(moved.get("rows", 0)) - int(q_gone.get("rows", 0)),
                     totals=_minus(moved.get("totals") or {}, q_gone))
    publish_write(spec, region, t, t.layer, iv, frame, ref, root=root, run_id=run_id,
                  source=_minus(old.source if old is not None else None, gone, q_gone), quarantine=moved,
                  fingerprint=dt.transaction_version(interval_app_id(spec.name, region, t.layer, t.name, iv.key)))


def _erase_region(spec: PipelineSpec, region: str, subject: Subject, *, root: str | None, run_id: str
                  ) -> dict[str, Any]:
    targets = [t for t in subject.targets if t.region == region]
    # quarantine first: a raw profile states its quarantine's version and totals
    targets.sort(key=lambda t: (t.table.name, t.layer != "quarantine"))
    done: dict[str, Any] = {}
    q_removed: dict[tuple[str, str], tuple[int, pl.DataFrame]] = {}
    for target in targets:
        what, by_key = _delete(spec, target, subject)
        done[target.path] = what
        if target.layer == "quarantine" and what["version_after"] is not None:
            for key, frame in by_key.items():
                q_removed[(target.table.name, key)] = (what["version_after"], frame)
            if target.table.layer == "raw":
                for key in by_key:
                    _republish(spec, target, key, None, None, root=root, run_id=run_id)
        elif target.layer == "raw":
            keys = set(by_key) | {k for (name, k) in q_removed if name == target.table.name}
            for key in sorted(keys):
                _republish(spec, target, key, by_key.get(key), q_removed.get((target.table.name, key)),
                           root=root, run_id=run_id)
    return done


def affected_intervals(spec: PipelineSpec, touched: set[str], decided: list[str]) -> list[str]:
    """The decided intervals whose data the erasure touched, or whose features' lookback reaches one."""
    raw = {t.name for t in spec.tables_in("raw")}
    reach = max((fs.lookback for fs in spec.features if set(fs.inputs) & raw), default=timedelta(0))
    starts = [spec.interval_at(k).start for k in touched]
    out = []
    for key in sorted(set(decided)):
        start = spec.interval_at(key).start
        if key in touched or any(s <= start <= s + reach for s in starts):
            out.append(key)
    return out


def erase(spec: PipelineSpec, principal: Principal, subject: Subject, *, reason: str, root: str | None = None,
          request: Any = None, on_step: OnStep = _quiet) -> Erasure:
    """Delete ``subject``'s rows in every region, record one ``erase`` row per region, and
    re-certify the affected intervals (see the module docstring). ``request``: the approved
    request carried out (its approvers are recorded)."""
    from pipelines.control.decisions import decisions

    now = datetime.now(UTC)
    result = Erasure(f"erase-{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}", subject.column, len(subject.values),
                     subject.digest, principal.identity)
    run_id = f"lockstep__{result.erasure_id}"
    requested_at = request.requested_at if request is not None else now
    touched: set[str] = set()
    for region in spec.regions:
        on_step(region, "erase")
        tables = _erase_region(spec, region, subject, root=root, run_id=run_id)
        result.regions[region] = tables
        touched |= {k for t in tables.values() for k in t["intervals"]}
        record_erasure_event(
            spec, root=root, erasure_id=result.erasure_id, event="erase", region=region, column=subject.column,
            values_digest=subject.digest, values_count=len(subject.values), who=principal.identity, reason=reason,
            request_id=request.request_id if request is not None else None,
            approvers=_json(request.approvers if request is not None else []), tables=_json(tables),
            intervals=_json(sorted({k for t in tables.values() for k in t["intervals"]})), requested_at=requested_at)
    for key in affected_intervals(spec, touched, [d.interval for d in decisions(spec, root=root)]):
        on_step("*", f"re-certify {key}")
        run = run_interval(spec, spec.interval_at(key), root=root, allow_open=True)
        d = run.decision
        result.intervals[key] = {"status": None if d is None else d.status,
                                 "generation_id": None if d is None else d.generation_id}
    record_erasure_event(spec, root=root, erasure_id=result.erasure_id, event="recertify", column=subject.column,
                         values_digest=subject.digest, values_count=len(subject.values), who=principal.identity,
                         reason=reason, intervals=_json(result.intervals), requested_at=requested_at)
    return result


def _json(value: Any) -> str:
    import json

    return json.dumps(value, sort_keys=True, default=str)
