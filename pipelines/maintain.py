"""Storage maintenance: compaction, checkpoints and a vacuum that never removes a version a
certification needs.

``maintain(spec)`` visits every table of the pipeline (every region's tables, their
quarantine tables and the ``_lockstep`` bookkeeping tables) and:

1. **compacts** small files (deltalake's ``optimize.compact``: one commit, the same rows);
2. **checkpoints** the log, so that opening a table reads one parquet file instead of a long
   tail of JSON commits;
3. **vacuums**: deletes data files that neither the newest version nor a *protected* version
   references. A version is protected when a decision refers to it (certified or blocked, so
   that ``rollback`` and ``override`` keep working) for an interval inside the spec's
   ``maintenance.rollback_window`` (measured back from the newest decided interval), when it
   is part of a certification in force for the newest interval, when an unexpired override
   refers to it, or when it is a certified version of a table a consumer pins to a feature
   version (``consumers[].feature_versions``: the pinned version's generations coexist with
   newer ones until the pin is retired). Delta's vacuum keeps exactly those versions' files (``keep_versions``);
   unreferenced files younger than ``maintenance.min_file_age`` stay (a concurrent writer
   may be about to commit them).

An erasure (:mod:`pipelines.erasure`) overrides all of it: no version older than its
rewrite of a table stays, whatever protected it; such a table is vacuumed without
compaction and without ``min_file_age``, and the erasure log gets a ``removal`` row per region.

Versions that lost their files are recorded in ``_lockstep/maintenance`` (one row per table
and run), and :func:`check_readable` turns a read of one into a clear error. The bookkeeping
tables are read at their newest version only, so only that version is kept.

Every step is a Delta commit or a deletion of files no kept version references, so a
maintenance run killed at any point leaves every table readable at its newest version and
every protected version.

Example::

    report = maintain(load_spec("fraud_features"), dry_run=True)
    report.summary()["files_removable"]
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from pipelines.control.erasures import erased_versions, erasure_events, record_erasure_event
from pipelines.control.maintenance import record_maintenance
from pipelines.errors import StorageError
from pipelines.spec import PipelineSpec
from pipelines.spec.settings import settings
from pipelines.storage import LOCKSTEP_DIR, lockstep_uri, open_table, region_prefix, table_uri


@dataclass
class TableMaintenance:
    """What maintenance did (or, dry, would do) to one table."""

    uri: str
    version_before: int
    version_after: int
    kept_versions: list[int]
    files_before: int
    files_after: int
    files_compacted: int = 0
    files_removed: int = 0
    files_removable: list[str] = field(default_factory=list)
    checkpointed: bool = False
    seconds: float = 0.0


@dataclass
class MaintenanceReport:
    pipeline: str
    dry_run: bool
    tables: list[TableMaintenance]
    protected: dict[str, list[int]]
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "pipeline": self.pipeline, "dry_run": self.dry_run, "seconds": round(self.seconds, 3),
            "tables": len(self.tables),
            "files_before": sum(t.files_before for t in self.tables),
            "files_after": sum(t.files_after for t in self.tables),
            "files_compacted": sum(t.files_compacted for t in self.tables),
            "files_removed": sum(t.files_removed for t in self.tables),
            "files_removable": sum(len(t.files_removable) for t in self.tables),
            "per_table": [{k: v for k, v in asdict(t).items() if k != "files_removable"} for t in self.tables],
        }


# --------------------------------------------------------------------------- what is protected
def protected_versions(spec: PipelineSpec, *, root: str | None = None, now: datetime | None = None) -> dict[str, set[int]]:
    """Table URI -> the versions that must stay readable (see the module docstring)."""
    from pipelines.certify import active_certifications, current_certified, decisions

    now = now or datetime.now(UTC)
    log = decisions(spec, root=root)
    out: dict[str, set[int]] = {}
    if not log:
        return out
    window = spec.maintenance.rollback_window
    newest = max(d.interval_start for d in log)
    keep = [d for d in log if d.interval_start >= newest - window]
    keep += [d for d in log if d.kind == "override" and d.expires_at is not None and d.live(now)]
    active = active_certifications(spec, root=root, now=now, log=log)
    if active:
        keep += list(active.values())  # every interval's certification in force (a future one too)
        in_force = current_certified(spec, log=log, now=now)
        if in_force is not None:
            keep.append(in_force)
    root_ = spec.root(root)

    def protect(member: str, version: int) -> None:
        region, layer, table = member.split("/", 2)
        uri = table_uri(root_.replace("{region}", region), spec.name, region, layer, table)
        out.setdefault(uri, set()).add(int(version))

    for d in keep:
        for member, version in d.generation.members.items():
            protect(member, version)
    # a consumer pinned to a feature version reads the newest certified generation of that
    # version (read_certified): while the pin stands, the pinned tables' certified versions stay
    pinned = {t for c in spec.consumers for t in c.feature_versions}
    for d in log:
        if d.certified:
            for member, version in d.generation.members.items():
                if member.split("/", 2)[2] in pinned:
                    protect(member, version)
    # an erasure overrides all of it: no version older than its rewrite of a table may stay
    for uri, (clean, _) in erased_versions(spec, root=root).items():
        if uri in out:
            out[uri] = {v for v in out[uri] if v >= clean}
    return out


def pipeline_tables(spec: PipelineSpec, *, root: str | None = None) -> list[str]:
    """Every Delta table of the pipeline that exists: regions' tables (and quarantine), then
    the ``_lockstep`` bookkeeping tables."""
    root_ = spec.root(root)
    opts = spec.storage.resolved_options()
    uris = []
    for region in spec.regions:
        for t in spec.tables:
            for layer in (t.layer, "quarantine") if t.layer in ("raw", "features") else (t.layer,):
                uris.append(table_uri(root_.replace("{region}", region), spec.name, region, layer, t.name))
    control = getattr(spec.storage, "control_root", None) or root_
    base = Path(lockstep_uri(control, spec.name, "x")).parent
    if "://" not in str(control) and base.is_dir():
        uris += [str(p) for p in sorted(base.iterdir()) if (p / "_delta_log").is_dir()]
        for region in spec.regions:  # what each region published under its prefix
            prefix = Path(region_prefix(str(control), spec.name, region))
            if prefix.is_dir():
                uris += [str(p) for p in sorted(prefix.iterdir()) if (p / "_delta_log").is_dir()]
    return [u for u in uris if open_table(u, opts) is not None]


# --------------------------------------------------------------------------- one table
def _ceil_hours(seconds: float) -> int:
    return max(0, math.ceil(seconds / 3600))


def maintain_table(
    uri: str, keep: set[int], *, spec: PipelineSpec, dry_run: bool = False,
    on_step: Callable[[str, str], None] | None = None, erasing: bool = False,
) -> TableMaintenance:
    """Compact, checkpoint and vacuum one table, keeping the newest version and ``keep``.
    ``erasing``: an erasure's older files must go now: no compaction (the files of partitions
    the erasure did not touch stay the newest version's), no minimum file age."""
    t0 = time.perf_counter()
    opts = spec.storage.resolved_options()
    m = spec.maintenance
    age = 0 if erasing else _ceil_hours(m.min_file_age.total_seconds())
    dt = open_table(uri, opts)
    if dt is None:
        raise StorageError(f"{uri}: no Delta table to maintain")
    before, files_before = dt.version(), len(dt.file_uris())
    kept = sorted(v for v in keep if v <= before)
    result = TableMaintenance(uri, before, before, kept, files_before, files_before)
    try:
        if not dry_run and not erasing:
            if on_step:
                on_step(uri, "compact")
            metrics = dt.optimize.compact(target_size=m.target_file_size)
            result.files_compacted = int(metrics.get("numFilesRemoved", 0))
            dt = open_table(uri, opts)
            assert dt is not None
        if not dry_run:
            if on_step:
                on_step(uri, "checkpoint")
            dt.create_checkpoint()
            result.checkpointed = True
        if on_step:
            on_step(uri, "vacuum")
        # the newest version's files are always kept; so are every protected version's
        removable = dt.vacuum(
            retention_hours=age, dry_run=True,
            enforce_retention_duration=False, full=True, keep_versions=kept or None,
        )
        if "://" not in uri:  # Delta lists tombstones whose files an earlier vacuum already deleted
            removable = [f for f in removable if (Path(uri) / unquote(f)).exists()]
        result.files_removable = sorted(removable)
        if not dry_run and removable and f"/{LOCKSTEP_DIR}/" not in uri:
            # record what becomes unreadable before it does (bookkeeping tables are read at
            # their newest version only, and appending to one while vacuuming it would race)
            record_maintenance(_control(spec, uri), spec.name, uri, version=dt.version(), kept_versions=kept,
                               files_removed=len(removable), rollback_window=str(m.rollback_window),
                               storage_options=opts)
        if not dry_run and removable:
            dt = open_table(uri, opts) or dt  # the newest snapshot: never vacuum a file just committed
            removed = dt.vacuum(
                retention_hours=age, dry_run=False,
                enforce_retention_duration=False, full=True, keep_versions=kept or None,
            )
            result.files_removed = len(set(removed) & set(removable))
    except StorageError:
        raise
    except Exception as exc:
        raise StorageError(f"{uri}: maintenance failed: {str(exc).splitlines()[0] if str(exc) else exc}",
                           uri=uri) from exc
    result.version_after = dt.version()
    result.files_after = len(dt.file_uris())
    result.seconds = time.perf_counter() - t0
    return result


def _control(spec: PipelineSpec, uri: str) -> str:
    """The root whose ``<pipeline>/_lockstep`` holds the maintenance log (the control root)."""
    marker = f"/{spec.name}/"
    if f"{marker}{LOCKSTEP_DIR}/" in uri + "/":
        return uri[: uri.rindex(f"{marker}{LOCKSTEP_DIR}")]
    if spec.storage.control_root is not None:
        return spec.control_root()
    return uri[: uri.index(marker)] if marker in uri else spec.control_root()


# --------------------------------------------------------------------------- the pipeline
def maintain(
    spec: PipelineSpec, *, root: str | None = None, dry_run: bool = False, now: datetime | None = None,
    on_step: Callable[[str, str], None] | None = None,
) -> MaintenanceReport:
    """Maintain every table of the pipeline (see the module docstring)."""
    from pipelines.preflight import check_roots

    t0 = time.perf_counter()
    check_roots(spec, root)
    protected = protected_versions(spec, root=root, now=now)
    pending = pending_removals(spec, root=root)
    erasing = {uri for uris in pending.values() for uri in uris}
    tables = []
    for uri in pipeline_tables(spec, root=root):
        lockstep_table = f"/{LOCKSTEP_DIR}/" in uri
        keep = set() if lockstep_table else protected.get(uri, set())
        tables.append(maintain_table(uri, keep, spec=spec, dry_run=dry_run, on_step=on_step, erasing=uri in erasing))
    if not dry_run:
        _record_removals(spec, pending, {t.uri: t for t in tables}, root)
    return MaintenanceReport(spec.name, dry_run, tables, {u: sorted(v) for u, v in protected.items()},
                             time.perf_counter() - t0)


def pending_removals(spec: PipelineSpec, *, root: str | None = None) -> dict[tuple[str, str], list[str]]:
    """(erasure id, region) -> the tables it deleted rows from, for each region whose older files
    no ``removal`` row says were deleted yet."""
    events = erasure_events(spec, root=root)
    done = {(e["erasure_id"], e["region"]) for e in events if e["event"] == "removal"}
    return {(e["erasure_id"], e["region"]): [t["uri"] for t in e["tables"].values() if t.get("rows")]
            for e in events if e["event"] == "erase" and (e["erasure_id"], e["region"]) not in done
            and any(t.get("rows") for t in e["tables"].values())}


def _record_removals(spec: PipelineSpec, pending: dict[tuple[str, str], list[str]],
                     done: dict[str, TableMaintenance], root: str | None) -> None:
    """The erasure log's ``removal`` row of each (erasure, region) whose every table was vacuumed
    now: the versions kept, the files deleted (the decision log of the erasure says so)."""
    import json

    for (erasure_id, region), uris in pending.items():
        if not all(u in done for u in uris):
            continue
        tables = {u: {"version": done[u].version_after, "kept_versions": done[u].kept_versions,
                      "files_removed": done[u].files_removed} for u in uris}
        record_erasure_event(spec, root=root, erasure_id=erasure_id, event="removal", region=region,
                             who=settings().who(), tables=json.dumps(tables),
                             reason="older files holding erased rows deleted by `lockstep maintain`")


def check_readable(spec: PipelineSpec, uri: str, version: int) -> None:
    """Raise a clear :class:`StorageError` when maintenance removed the files of ``version``
    of the table at ``uri`` (it was outside the rollback window and nothing protected it)."""
    from pipelines.certify import removed_by_maintenance

    why = removed_by_maintenance(_control(spec, uri), spec.name, uri, version, spec.control_options())
    if why:
        raise StorageError(why, uri=uri, version=version, retryable=False)
