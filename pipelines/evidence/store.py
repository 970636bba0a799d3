"""The evidence store: ``<control root>/<pipeline>/_lockstep/evidence``, a Delta table.

Append-only, partitioned by interval, one row per published profile (a small JSON summary
and two parquet blobs). Regions append their profiles; the gate reads one interval's
partition (and its drift window's) and nothing else. Every read reports the bytes it took,
so what crosses into the control plane is measured.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import polars as pl

from pipelines.errors import EvidenceError, LockstepError
from pipelines.evidence.profile import Profile
from pipelines.spec import PipelineSpec
from pipelines.storage import OpenTables, append_rows, decision_tables, scan_partition

EVIDENCE = "evidence"

EVIDENCE_SCHEMA = pl.Schema({
    "pipeline": pl.String(),
    "interval": pl.String(),
    "region": pl.String(),
    "layer": pl.String(),
    "table": pl.String(),
    "version": pl.Int64(),
    "fingerprint": pl.Int64(),
    "plan_hash": pl.String(),
    "run_id": pl.String(),
    "recorded_at": pl.Datetime("us", "UTC"),
    "summary": pl.String(),
    "hist": pl.Binary(),
    "keyed": pl.Binary(),
})


def evidence_uri(spec: PipelineSpec, root: str | None = None) -> str:
    return spec.lockstep_uri(EVIDENCE, root)


def publish(spec: PipelineSpec, profiles: list[Profile], *, root: str | None = None) -> None:
    """Append profiles to the evidence store in one commit."""
    if not profiles:
        return
    now = datetime.now(UTC)
    rows = [{
        "pipeline": p.pipeline, "interval": p.interval, "region": p.region, "layer": p.layer, "table": p.table,
        "version": p.version, "fingerprint": p.fingerprint, "plan_hash": p.plan_hash, "run_id": p.run_id,
        "recorded_at": now, "summary": p.summary_json(), "hist": p.hist_bytes(), "keyed": p.keyed_raw,
    } for p in profiles]
    frame = pl.DataFrame(rows, schema=EVIDENCE_SCHEMA)
    try:
        append_rows(evidence_uri(spec, root), frame, spec.control_options(), partition_by=["interval"])
    except LockstepError as exc:
        raise EvidenceError(f"{spec.name}: cannot publish evidence: {exc}", retryable=True) from exc


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


def load(spec: PipelineSpec, intervals: list[str], *, root: str | None = None,
         region: str | None = None, table: str | None = None, tables: OpenTables | None = None) -> EvidenceSet:
    """Every profile published about ``intervals`` (optionally one region's, one table's).

    Reads only the intervals' partitions (their files, as the log lists them). The keyed
    digests (the largest part of a replicated table's profile) are not read here: a profile
    fetches its own when a parity descent asks for it, from the same table version, and counts
    the bytes. ``tables``: the decision's open control tables (the store is opened, or brought
    to its newest version, once per call either way)."""
    uri = evidence_uri(spec, root)
    opts = spec.control_options()
    if not intervals:
        return EvidenceSet([])
    try:
        dt = (tables or decision_tables(opts)).get(uri)
        if dt is None:
            return EvidenceSet([])
        frames = []
        where: dict[str, str | int] = {k: v for k, v in (("region", region), ("table", table)) if v is not None}
        for interval in dict.fromkeys(intervals):
            lf = scan_partition(dt, {"interval": interval}, opts, where=where)
            frames.append(lf.select([c for c in EVIDENCE_SCHEMA.names() if c != "keyed"]))
        df = pl.concat(frames, how="vertical_relaxed").collect()
    except Exception as exc:  # a broken evidence store must block, with its reason
        raise EvidenceError(f"{uri}: cannot read the evidence store: {exc}") from exc

    def fetch_keyed(p: Profile) -> bytes:
        try:
            got = (scan_partition(dt, {"interval": p.interval}, opts, where={
                       "region": p.region, "layer": p.layer, "table": p.table, "version": p.version})
                   .filter(pl.col("recorded_at") == p.recorded_at)
                   .select("keyed").collect())
        except Exception as exc:
            raise EvidenceError(f"{uri}: cannot read the keyed digest of {p.member}@{p.version}: {exc}") from exc
        return bytes(got["keyed"][0] or b"") if got.height else b""

    profiles = []
    for r in df.iter_rows(named=True):
        p = Profile.decode(r)
        p.keyed_loader = fetch_keyed
        profiles.append(p)
    return EvidenceSet(profiles)
