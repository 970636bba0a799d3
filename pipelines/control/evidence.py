"""The evidence store: per region, ``<control root>/<pipeline>/_lockstep/regions/<region>/evidence``,
a Delta table under the region's prefix (the one prefix of the control plane its key may write).

Append-only, partitioned by interval, one row per published profile (a small JSON summary
and two parquet blobs). Regions append their profiles (:func:`publish_write` profiles the
rows a write just committed and publishes it; :func:`ensure_published` re-publishes a
skipped write's missing one); the gate reads one interval's partition (and its drift
window's) of each region's table and nothing else. Every read reports the bytes it took, so what crosses into the
control plane is measured. What a profile is: :mod:`pipelines.evidence`.

Example::

    ref = write_interval(uri, frame, ...)
    publish_write(spec, "eu-west", table, "raw", interval, frame, ref)
    load(spec, [interval.key]).newest("eu-west", "raw", "transactions", interval.key)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import polars as pl
from deltalake import DeltaTable

from pipelines.control.index import refresh_index
from pipelines.control.tables import EVIDENCE_TABLE, UTC_TIME
from pipelines.errors import EvidenceError, LockstepError
from pipelines.evidence.profile import Profile, build_profile, plan_hash, profile_plan, totals_of
from pipelines.spec import Interval, PipelineSpec, TableSpec
from pipelines.storage import OpenTables, TableRef, open_table, partition_file_hashes, read_table

EVIDENCE = EVIDENCE_TABLE.name
#: the table's columns (the registry's, :mod:`pipelines.control.tables`)
EVIDENCE_SCHEMA = EVIDENCE_TABLE.schema


def evidence_uri(spec: PipelineSpec, region: str, root: str | None = None) -> str:
    """Where ``region``'s evidence lives: its table under the region's prefix."""
    return spec.region_lockstep_uri(region, EVIDENCE, root)


def publish(spec: PipelineSpec, profiles: list[Profile], *, root: str | None = None) -> None:
    """Append profiles to the evidence store, one commit per region (each to its own table),
    then refresh the region's index of each interval it touched (:mod:`pipelines.control.index`).
    Inside a step (its block of open control tables), the rows are committed when the step
    ends, with the rest of its evidence, or before anything reads the region's evidence."""
    now = datetime.now(UTC)
    by_region: dict[str, list[dict[str, Any]]] = {}
    for p in profiles:
        by_region.setdefault(p.region, []).append({
            "pipeline": p.pipeline, "interval": p.interval, "region": p.region, "layer": p.layer, "table": p.table,
            "version": p.version, "fingerprint": p.fingerprint, "plan_hash": p.plan_hash, "run_id": p.run_id,
            "recorded_at": now, "summary": p.summary_json(), "hist": p.hist_bytes(), "keyed": p.keyed_raw,
        })
    for region, rows in by_region.items():
        try:
            EVIDENCE_TABLE.append(evidence_uri(spec, region, root), rows, spec.control_options(), defer=True)
        except LockstepError as exc:
            raise EvidenceError(f"{spec.name}: {region} cannot publish evidence: {exc}", retryable=True) from exc
        for interval in dict.fromkeys(str(r["interval"]) for r in rows):  # the gate's index of what changed
            refresh_index(spec.control_root(root), spec.name, region, interval, spec.control_options(),
                          run_id=str(rows[-1]["run_id"] or ""))


@dataclass
class EvidenceSet:
    """The profiles of some intervals, as read from the store, with the bytes read."""

    profiles: list[Profile]

    @property
    def bytes_read(self) -> int:
        """Bytes taken from the store so far (keyed digests count once fetched)."""
        return sum(p.nbytes for p in self.profiles)

    def newest(self, region: str, layer: str, table: str, interval: str) -> Profile | None:
        """The profile of the newest table version for the interval (the gate's choice)."""
        mine = [p for p in self.profiles
                if (p.region, p.layer, p.table, p.interval) == (region, layer, table, interval)]
        return max(mine, key=lambda p: (p.version, p.recorded_at or datetime.min.replace(tzinfo=UTC)), default=None)

    def at(self, region: str, layer: str, table: str, interval: str, version: int) -> Profile | None:
        """The newest profile published about exactly this version."""
        mine = [p for p in self.profiles if (p.region, p.layer, p.table, p.interval, p.version)
                == (region, layer, table, interval, version)]
        return max(mine, key=lambda p: p.recorded_at or datetime.min.replace(tzinfo=UTC), default=None)


#: up to how many intervals :func:`scan_evidence` reads partition by partition
PER_PARTITION_SCANS = 8


def scan_evidence(spec: PipelineSpec, intervals: list[str], *, root: str | None = None,
                  regions: list[str] | None = None, table: str | None = None, tables: OpenTables | None = None
                  ) -> tuple[pl.DataFrame, dict[str, DeltaTable]]:
    """The evidence rows (without keyed digests) of ``intervals`` from each region's table (or
    those of ``regions``), one open per region, and the tables opened. A few intervals: one
    scan per interval's partition (its files, as the log lists them); more than
    :data:`PER_PARTITION_SCANS`: one scan per region of the partitions asked for (a lookback
    of a day of 15-minute intervals is 96 partitions: one log listing, not 96)."""
    opts = spec.control_options()
    columns = [c for c in EVIDENCE_SCHEMA.names() if c != "keyed"]
    opened: dict[str, DeltaTable] = {}
    scans: list[tuple[str, pl.LazyFrame]] = []
    where: dict[str, str | int] = {"table": table} if table is not None else {}
    wanted = list(dict.fromkeys(intervals))
    for r in spec.regions if regions is None else regions:
        uri = evidence_uri(spec, r, root)
        try:
            dt = EVIDENCE_TABLE.open(uri, opts, tables=tables)
            if dt is None:
                continue
            opened[r] = dt
            if len(wanted) > PER_PARTITION_SCANS:
                lf = EVIDENCE_TABLE.scan(dt, opts, where=where).filter(pl.col("interval").is_in(wanted))
                scans.append((r, lf.select(columns)))
                continue
            for interval in wanted:
                lf = EVIDENCE_TABLE.scan(dt, opts, partition={"interval": interval}, where=where)
                scans.append((r, lf.select(columns)))
        except Exception as exc:  # a broken evidence store must block, with its reason
            raise EvidenceError(f"{uri}: cannot read {r}'s evidence: {exc}") from exc
    if not scans:
        return EVIDENCE_TABLE.empty().select(columns), opened
    try:  # every region's partition read side by side
        frames = pl.collect_all([lf for _, lf in scans])
    except Exception:  # name the region whose evidence cannot be read: read them one by one
        for r, lf in scans:
            try:
                lf.collect()
            except Exception as exc:
                raise EvidenceError(f"{evidence_uri(spec, r, root)}: cannot read {r}'s evidence: {exc}") from exc
        raise
    return pl.concat(frames, how="vertical_relaxed"), opened


def decode_profiles(spec: PipelineSpec, df: pl.DataFrame, table_of: Callable[[str], DeltaTable | None], *,
                    root: str | None = None) -> EvidenceSet:
    """Evidence rows as profiles; each fetches its keyed digest on demand from the region's
    table as ``table_of(region)`` opens it (the version its row was read at, or a later one)."""
    opts = spec.control_options()

    def fetch_keyed(p: Profile) -> bytes:
        uri = evidence_uri(spec, p.region, root)
        try:
            got = (EVIDENCE_TABLE.scan(table_of(p.region), opts, partition={"interval": p.interval}, where={
                       "layer": p.layer, "table": p.table, "version": p.version})
                   .filter(pl.col("recorded_at") == p.recorded_at)
                   .select("keyed").collect())
        except Exception as exc:
            raise EvidenceError(f"{uri}: cannot read the keyed digest of {p.member}@{p.version}: {exc}") from exc
        return bytes(got["keyed"][0] or b"") if got.height else b""

    profiles = []
    for row in df.iter_rows(named=True):
        p = Profile.decode(row)
        p.keyed_loader = fetch_keyed
        profiles.append(p)
    return EvidenceSet(profiles)


def load(spec: PipelineSpec, intervals: list[str], *, root: str | None = None,
         region: str | None = None, table: str | None = None, tables: OpenTables | None = None) -> EvidenceSet:
    """Every profile published about ``intervals`` (optionally one region's, one table's).

    Reads only the intervals' partitions (their files, as the log lists them) of each region's
    table: one open and one scan per region and interval, whatever the number of files. The
    keyed digests (the largest part of a replicated table's profile) are not read here: a profile
    fetches its own when a parity descent asks for it, from the same table version, and counts
    the bytes. ``tables``: the decision's open control tables (each region's store is opened,
    or brought to its newest version, once per call either way). The gate reads the regions'
    indexes first (:mod:`pipelines.control.index`) and this only where one does not verify."""
    if not intervals:
        return EvidenceSet([])
    df, opened = scan_evidence(spec, intervals, root=root, regions=None if region is None else [region], table=table,
                               tables=tables)
    return decode_profiles(spec, df, opened.__getitem__, root=root)


def published(spec: PipelineSpec, *, root: str | None = None) -> pl.DataFrame:
    """What every region published, over all intervals, without the blobs: one row per
    profile (``region, layer, table, interval, version, rows, recorded_at``), one scan per
    region. What ``status`` and the matrix show about regions' tables, from the control plane."""
    opts = spec.control_options()
    frames = []
    for r in spec.regions:
        uri = evidence_uri(spec, r, root)
        try:
            dt = EVIDENCE_TABLE.open(uri, opts)
            if dt is None:
                continue
            frames.append(EVIDENCE_TABLE.scan(dt, opts).select(
                "region", "layer", "table", "interval", "version", "recorded_at",
                rows=pl.col("summary").str.json_path_match("$.rows").cast(pl.Int64)).collect())
        except Exception as exc:  # fail closed: what cannot be read is named
            raise EvidenceError(f"{uri}: cannot read {r}'s evidence: {exc}") from exc
    if not frames:
        return pl.DataFrame(schema={"region": pl.String, "layer": pl.String, "table": pl.String,
                                    "interval": pl.String, "version": pl.Int64, "recorded_at": UTC_TIME,
                                    "rows": pl.Int64})
    return pl.concat(frames, how="vertical_relaxed")


# --------------------------------------------------------------------------- what a region publishes
def table_schema(uri: str, version: int, storage_options: dict[str, str] | None = None) -> list[list[Any]]:
    """(name, Delta type, nullable) of every column of the table at ``version``."""
    dt = open_table(uri, storage_options, version)
    if dt is None:
        raise EvidenceError(f"{uri}: no table at version {version}")
    return [[f.name, str(f.type), bool(f.nullable)] for f in dt.schema().fields]


def publish_write(
    spec: PipelineSpec, region: str, table: TableSpec, layer: str, interval: Interval, frame: pl.DataFrame,
    ref: TableRef, *, root: str | None = None, run_id: str = "", source: dict[str, float] | None = None,
    quarantine: dict[str, Any] | None = None, fingerprint: int | None = None, inputs: dict[str, Any] | None = None,
) -> Profile:
    """Profile the rows a write just committed (``frame``, at ``ref.version``) and publish it.
    ``inputs``: for a derived table, the input versions and files it was computed from. The
    profile carries the hashes of the data files the write left (``ref.files``)."""
    schema = table_schema(ref.uri, ref.version, spec.region_options(region))
    p = build_profile(spec, region, table, layer, interval.key, frame, version=ref.version, schema=schema,
                      fingerprint=fingerprint, run_id=run_id, source=source, quarantine=quarantine, inputs=inputs,
                      files=ref.files, root=root)
    publish(spec, [p], root=root)
    return p


def ensure_published(
    spec: PipelineSpec, region: str, table: TableSpec, layer: str, interval: Interval, ref: TableRef, *,
    root: str | None = None, run_id: str = "", fingerprint: int | None = None, source_columns: bool = False,
    inputs: dict[str, Any] | None = None,
) -> Profile:
    """For a skipped (unchanged) write: the profile of the interval's current rows, published
    again only when none with the current plan and this fingerprint exists (a task killed
    between its commit and its profile leaves none, and the retry must not leave it so)."""
    ev = load(spec, [interval.key], root=root, region=region, table=table.name)
    current = plan_hash(profile_plan(spec, table))
    newest = ev.newest(region, layer, table.name, interval.key)
    if newest is not None and newest.plan_hash == current and newest.fingerprint == fingerprint:
        return newest
    opts = spec.region_options(region)
    version = open_table(ref.uri, opts)
    if version is None:
        raise EvidenceError(f"{ref.uri}: table vanished before its profile was published")
    frame = read_table(ref.uri, version=version.version(), partition=ref.partition, storage_options=opts).collect()
    source = None
    if source_columns:  # a raw table as ingested: its rows are the source's rows
        source = totals_of(frame, profile_plan(spec, table)["totals"])
    files = partition_file_hashes(ref.uri, version.version(), ref.partition, opts)
    ref = TableRef(ref.uri, version.version(), frame.height, ref.partition, skipped=True, files=files)
    return publish_write(spec, region, table, layer, interval, frame, ref, root=root, run_id=run_id,
                         source=source, fingerprint=fingerprint, inputs=inputs)
