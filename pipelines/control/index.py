"""The interval index: one small object per (region, interval) holding exactly the gate's
inputs from that region, so a decision reads a few objects instead of replaying every
region's Delta logs.

A region writes it under its own prefix, ``<control root>/<pipeline>/_lockstep/regions/<region>/index/<interval>.idx``,
each time it publishes evidence (:func:`~pipelines.control.evidence.publish`) or records its
own check results (:func:`~pipelines.control.results.record_results`): the interval's
partition of its evidence table (every profile's summary and histograms; the keyed digests
stay in the table) and of its check-results table (validation verdicts, coverage, step
failures), each as read at one Delta version, with that version and the sha256 of the
commit file that made it.

The index is never trusted blindly (:func:`read_index`): the object must parse, its body
must match the sha256 its header states, its header must name this pipeline, region and
interval, and each table it summarises must still hold that interval's partition as at the
version it names (the commit file of that version holds the bytes it hashed, and each later
commit, up to :data:`FOLLOW_COMMITS`, changed other intervals' partitions only). Anything
else - no index, an unreadable or corrupt one, one written before the region published
again, one copied from another run or place - is a miss with its reason, and the reader
reads the region's tables instead (:func:`load_indexed`): the same inputs, the same decision.

Example::

    refresh_index(control_root, "fraud_features", "eu-west", "2026-01-08", options)
    entry, why = read_index(control_root, "fraud_features", "eu-west", "2026-01-08", options)
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import polars as pl

from pipelines.control.tables import EVIDENCE_TABLE, REGION_RESULTS_TABLE, ControlTable
from pipelines.paths import join_uri
from pipelines.storage import decision_tables, put_object, read_object, region_prefix

log = logging.getLogger(__name__)

#: the first line of every index object (a format change makes older objects misses)
FORMAT = "lockstep-interval-index/1"
INDEX_DIR = "index"
#: the evidence columns an index holds (the keyed digests are fetched from the table on demand)
EVIDENCE_COLUMNS = [c for c in EVIDENCE_TABLE.schema.names() if c != "keyed"]
#: how many commits after the version an index names a reader follows, each checked to change
#: other intervals' partitions only (a region publishes later intervals into the same tables)
FOLLOW_COMMITS = 32
#: how many regions' indexes are read at once (object stores answer side by side)
READ_THREADS = 4
_NO_CHECKS = REGION_RESULTS_TABLE.empty()

Options = dict[str, str] | None


def index_name(interval: str) -> str:
    """The object of one interval under a region's index folder (``:`` left out of the key)."""
    return f"{interval.replace(':', '')}.idx"


def _commit_path(version: int) -> str:
    return f"_delta_log/{version:020d}.json"


def _binding(table: ControlTable, uri: str, opts: Options, interval: str,
             columns: list[str] | None) -> tuple[dict[str, Any], pl.DataFrame]:
    """What one table holds of ``interval`` at its newest version, and that version bound
    (the table as the step in progress holds it open, brought to its newest commit)."""
    dt = decision_tables(opts).get(uri)
    lf = table.scan(dt, opts, partition={"interval": interval})
    frame = (lf if columns is None else lf.select(columns)).collect()  # (the keyed digests never read)
    if dt is None:
        return {"version": None, "commit_sha256": None}, frame
    version = dt.version()
    sha = hashlib.sha256(read_object(uri, _commit_path(version), opts)).hexdigest()
    return {"version": version, "commit_sha256": sha}, frame


def _ipc(frame: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.write_ipc(buf, compression="uncompressed")
    return buf.getvalue()


def _frame(data: bytes) -> pl.DataFrame:
    """A frame from its IPC bytes (through Arrow: no copy, no query plan)."""
    import pyarrow as pa

    out = pl.from_arrow(pa.ipc.open_file(pa.BufferReader(data)).read_all())
    assert isinstance(out, pl.DataFrame)
    return out


#: the refreshes a step has asked for, made once each when it ends (:func:`refresh_once`)
_PENDING: ContextVar[dict[tuple[str, str, str, str, str], tuple[Options, str]] | None] = ContextVar(
    "lockstep_pending_index_refreshes", default=None)


@contextmanager
def refresh_once() -> Iterator[None]:
    """Within the block, :func:`refresh_index` only notes what to refresh; when the block ends
    without an error, each (region, interval) noted is refreshed once, from its tables as they
    stand then. A step publishes several tables' evidence and its check results: one index
    write at its end, not one per append. A block that fails leaves the index it found; a
    reader finds it stale (a later commit changed the interval) and reads the tables."""
    if _PENDING.get() is not None:  # nested: the outermost block refreshes
        yield
        return
    pending: dict[tuple[str, str, str, str, str], tuple[Options, str]] = {}
    token = _PENDING.set(pending)
    try:
        yield
    finally:
        _PENDING.reset(token)
    for (control_root, pipeline, region, interval, _), (opts, run_id) in pending.items():
        _refresh(control_root, pipeline, region, interval, opts, run_id)


def refresh_index(control_root: str, pipeline: str, region: str, interval: str, storage_options: Options = None,
                  *, run_id: str = "") -> bool:
    """Write ``region``'s index of ``interval`` from its evidence and check-results tables as
    they stand now (inside :func:`refresh_once`: when its block ends). Best effort: the index
    only saves reads, so a failure is logged and leaves whatever was there, which the reader
    then finds stale. Returns whether it was written (or noted for the block's end)."""
    pending = _PENDING.get()
    if pending is not None:
        key = (control_root, pipeline, region, interval, json.dumps(storage_options or {}, sort_keys=True))
        pending[key] = (storage_options, run_id)
        return True
    return _refresh(control_root, pipeline, region, interval, storage_options, run_id)


def _refresh(control_root: str, pipeline: str, region: str, interval: str, storage_options: Options,
             run_id: str) -> bool:
    prefix = region_prefix(control_root, pipeline, region)
    try:
        ev_bind, ev = _binding(EVIDENCE_TABLE, EVIDENCE_TABLE.region_uri(control_root, pipeline, region),
                               storage_options, interval, EVIDENCE_COLUMNS)
        ck_bind, ck = _binding(REGION_RESULTS_TABLE, REGION_RESULTS_TABLE.region_uri(control_root, pipeline, region),
                               storage_options, interval, None)
        ev_bytes, ck_bytes = _ipc(ev), _ipc(ck)
        header = {"format": FORMAT, "pipeline": pipeline, "region": region, "interval": interval, "run_id": run_id,
                  "evidence": {**ev_bind, "bytes": len(ev_bytes)}, "checks": {**ck_bind, "bytes": len(ck_bytes)},
                  "body_sha256": hashlib.sha256(ev_bytes + ck_bytes).hexdigest()}
        data = json.dumps(header, sort_keys=True).encode() + b"\n" + ev_bytes + ck_bytes
        put_object(prefix, f"{INDEX_DIR}/{index_name(interval)}", data, storage_options)
        return True
    except Exception as exc:  # the tables stay the evidence; the reader falls back to them
        log.warning("%s: %s's index of %s not written (%s: %s); the gate will read its tables", pipeline, region,
                    interval, type(exc).__name__, exc)
        return False


@dataclass
class IndexEntry:
    """One region's index of one interval, verified against the tables it summarises."""

    region: str
    interval: str
    run_id: str
    evidence: pl.DataFrame  # the evidence partition (without keyed digests)
    checks: pl.DataFrame  # the region's check results of the interval
    evidence_version: int | None
    nbytes: int


def _touches(commit: bytes, interval: str) -> bool:
    """Does a Delta commit change the ``interval`` partition? Any action it cannot place in
    another partition (metadata, protocol, a remove without its partition values) counts."""
    for line in commit.splitlines():
        if not line.strip():
            continue
        for kind, body in json.loads(line).items():
            if kind in ("commitInfo", "txn"):
                continue
            values = body.get("partitionValues") if kind in ("add", "remove", "cdc") and isinstance(body, dict) else None
            if isinstance(values, dict) and values.get("interval") is not None and values["interval"] != interval:
                continue
            return True
    return False


def _current(uri: str, bound: dict[str, Any], opts: Options, interval: str) -> str:
    """Why ``interval``'s partition of the table at ``uri`` may no longer be what ``bound``
    names ("" when it still is): the commit of the version named must be the one hashed, and
    every later commit (up to :data:`FOLLOW_COMMITS`) must change other partitions only."""
    version = bound.get("version")
    if version is None:  # the index says there was no table: any commit since is a change
        nxt = 0
    else:
        try:
            got = hashlib.sha256(read_object(uri, _commit_path(int(version)), opts)).hexdigest()
        except FileNotFoundError:
            return f"version {version} is not in the table's log"
        if got != bound.get("commit_sha256"):
            return f"the commit of version {version} is not the one indexed (the table was replaced)"
        nxt = int(version) + 1
    for k in range(nxt, nxt + FOLLOW_COMMITS):
        try:
            commit = read_object(uri, _commit_path(k), opts)
        except FileNotFoundError:
            return ""
        if _touches(commit, interval):
            return (f"version {k} changed {interval} after version {version}, the one indexed "
                    "(published again after the index)")
    return f"more than {FOLLOW_COMMITS} commits since version {version}, the one indexed: not followed"


def read_index(control_root: str, pipeline: str, region: str, interval: str, storage_options: Options = None,
               *, checks: bool = True) -> tuple[IndexEntry | None, str]:
    """``region``'s index of ``interval``, verified; else (None, why it cannot be used).
    ``checks``: also verify (and decode) the check results (False: the evidence alone)."""
    prefix = region_prefix(control_root, pipeline, region)
    where = join_uri(prefix, INDEX_DIR, index_name(interval))
    try:
        data = read_object(prefix, f"{INDEX_DIR}/{index_name(interval)}", storage_options)
    except FileNotFoundError:
        return None, f"{where}: no index"
    except Exception as exc:
        return None, f"{where}: unreadable ({type(exc).__name__}: {exc})"
    try:
        head, _, body = data.partition(b"\n")
        header = json.loads(head)
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            return None, f"{where}: not an index of format {FORMAT}"
        if hashlib.sha256(body).hexdigest() != header.get("body_sha256"):
            return None, f"{where}: corrupt (its body does not match the sha256 its header states)"
        named = (header.get("pipeline"), header.get("region"), header.get("interval"))
        if named != (pipeline, region, interval):
            return None, f"{where}: indexes {'/'.join(map(str, named))}, not {pipeline}/{region}/{interval}"
        ev_n = int(header["evidence"]["bytes"])
        ev_uri = EVIDENCE_TABLE.region_uri(control_root, pipeline, region)
        why = _current(ev_uri, header["evidence"], storage_options, interval)
        if not why and checks:
            why = _current(REGION_RESULTS_TABLE.region_uri(control_root, pipeline, region), header["checks"],
                           storage_options, interval)
        if why:
            return None, f"{where}: stale: {why}"
        evidence = _frame(body[:ev_n])
        results = _frame(body[ev_n:]) if checks else _NO_CHECKS
    except Exception as exc:  # whatever does not decode is no index
        return None, f"{where}: unreadable ({type(exc).__name__}: {exc})"
    if evidence.columns != EVIDENCE_COLUMNS or (checks and results.columns != REGION_RESULTS_TABLE.schema.names()):
        return None, f"{where}: its frames do not have the tables' columns"
    version = header["evidence"].get("version")
    return IndexEntry(region, interval, str(header.get("run_id") or ""), evidence, results,
                      None if version is None else int(version), len(data)), ""


def read_indexes(control_root: str, pipeline: str, pairs: list[tuple[str, str]], storage_options: Options = None,
                 *, checks: bool = True) -> dict[tuple[str, str], tuple[IndexEntry | None, str]]:
    """:func:`read_index` of each (region, interval), side by side on an object store."""
    def one(pair: tuple[str, str]) -> tuple[IndexEntry | None, str]:
        return read_index(control_root, pipeline, pair[0], pair[1], storage_options, checks=checks)

    if len(pairs) < 2 or "://" not in control_root or control_root.startswith("file://"):
        return {p: one(p) for p in pairs}  # local files: threads would only add their start-up
    with ThreadPoolExecutor(max_workers=min(len(pairs), READ_THREADS)) as pool:
        return dict(zip(pairs, pool.map(one, pairs), strict=True))


@dataclass
class Indexed:
    """What :func:`load_indexed` assembled: the evidence rows, the regions' check results,
    and each (region, interval) the index could not serve, with why (read from its tables)."""

    evidence: pl.DataFrame
    checks: pl.DataFrame
    #: region -> evidence version each index was verified at (interval -> version)
    versions: dict[str, dict[str, int | None]]
    misses: dict[str, str]
    nbytes: int = 0


def load_indexed(control_root: str, pipeline: str, regions: list[str], intervals: list[str],
                 fallback: Callable[[list[str], list[str]], tuple[pl.DataFrame, pl.DataFrame]],
                 storage_options: Options = None, *, checks: bool = True) -> Indexed:
    """The evidence (and, with ``checks``, the regions' check results) of ``intervals``, from
    the index where it verifies, else from ``fallback(regions, intervals)``, which reads those
    regions' tables (both frames; the checks frame may be empty when not asked for)."""
    pairs = [(r, iv) for r in regions for iv in dict.fromkeys(intervals)]
    got = read_indexes(control_root, pipeline, pairs, storage_options, checks=checks)
    misses = {f"{r}/{iv}": why for (r, iv), (entry, why) in got.items() if entry is None}
    missed = [r for r in regions if any(entry is None for (rr, _), (entry, _w) in got.items() if rr == r)]
    ev_frames: list[pl.DataFrame] = []
    ck_frames: list[pl.DataFrame] = []
    versions: dict[str, dict[str, int | None]] = {}
    nbytes = 0
    if missed:  # any interval missed: the region's tables answer for all of them
        ev, ck = fallback(missed, intervals)
        ev_frames.append(ev.select(EVIDENCE_COLUMNS))
        ck_frames.append(ck)
    for r in regions:
        if r in missed:
            continue
        for iv in dict.fromkeys(intervals):
            entry = got[(r, iv)][0]
            assert entry is not None
            ev_frames.append(entry.evidence)
            ck_frames.append(entry.checks)
            versions.setdefault(r, {})[iv] = entry.evidence_version
            nbytes += entry.nbytes
    for key, why in misses.items():
        log.info("%s: index of %s not used: %s", pipeline, key, why)
    # (an index's frames have the tables' columns in order: read_index checked them)
    evidence = pl.concat(ev_frames, how="vertical_relaxed") if ev_frames \
        else EVIDENCE_TABLE.empty().select(EVIDENCE_COLUMNS)
    results = pl.concat(ck_frames, how="vertical_relaxed") if ck_frames else REGION_RESULTS_TABLE.empty()
    return Indexed(evidence, results, versions, misses, nbytes)
