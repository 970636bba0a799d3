"""Evidence: what each region publishes about the exact table versions it wrote.

The gate decides from evidence alone (DESIGN rule 7): a region step that writes a table
version profiles the rows it wrote, where they live, and appends the profile to the evidence
store on the control plane; validation records its results bound to the same version.
Nothing on the gate's path reads a region's tables.

Example::

    ref = write_interval(uri, frame, ...)
    publish_write(spec, "eu-west", table, "raw", interval, frame, ref)
    store.load(spec, [interval.key]).newest("eu-west", "raw", "transactions", interval.key)
"""

from __future__ import annotations

from typing import Any

import polars as pl

from pipelines.errors import EvidenceError
from pipelines.evidence import store
from pipelines.evidence.profile import (
    KEYED_LIMIT,
    Profile,
    build_profile,
    plan_hash,
    profile_plan,
    totals_of,
)
from pipelines.spec import Interval, PipelineSpec, TableSpec
from pipelines.storage import TableRef, open_table, partition_file_hashes, read_table

__all__ = [
    "KEYED_LIMIT", "Profile", "build_profile", "ensure_published", "plan_hash", "profile_plan", "publish_write",
    "store", "table_schema", "totals_of",
]


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
                      files=ref.files)
    store.publish(spec, [p], root=root)
    return p


def ensure_published(
    spec: PipelineSpec, region: str, table: TableSpec, layer: str, interval: Interval, ref: TableRef, *,
    root: str | None = None, run_id: str = "", fingerprint: int | None = None, source_columns: bool = False,
    inputs: dict[str, Any] | None = None,
) -> Profile:
    """For a skipped (unchanged) write: the profile of the interval's current rows, published
    again only when none with the current plan and this fingerprint exists (a task killed
    between its commit and its profile leaves none, and the retry must not leave it so)."""
    ev = store.load(spec, [interval.key], root=root, region=region, table=table.name)
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
