"""The maintenance log: ``<control_root>/<pipeline>/_lockstep/maintenance``.

``lockstep maintain`` records, before it vacuums a table, which of its versions it keeps
(one row per table and run); a read of a version whose files it removed is turned into a
clear error from these rows (:func:`pipelines.certify.removed_by_maintenance`).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import polars as pl

from pipelines.control.tables import MAINTENANCE_TABLE

MAINTENANCE = MAINTENANCE_TABLE.name
#: the table's columns (the registry's, :mod:`pipelines.control.tables`)
MAINTENANCE_SCHEMA = MAINTENANCE_TABLE.schema


def record_maintenance(control_root: str, pipeline: str, uri: str, *, version: int, kept_versions: list[int],
                       files_removed: int, rollback_window: str,
                       storage_options: dict[str, str] | None = None) -> int:
    """Record that maintenance of the table at ``uri`` (at ``version``) keeps exactly
    ``kept_versions`` and the newest; returns the log's new version."""
    row = {"uri": uri, "ran_at": datetime.now(UTC), "version": version, "kept_versions": json.dumps(kept_versions),
           "files_removed": files_removed, "rollback_window": rollback_window}
    return MAINTENANCE_TABLE.append(MAINTENANCE_TABLE.uri(control_root, pipeline), [row], storage_options)


def maintenance_after(control_root: str, pipeline: str, uri: str, version: int,
                      storage_options: dict[str, str] | None = None) -> pl.DataFrame:
    """The maintenance runs of the table at ``uri`` that found it newer than ``version``,
    oldest first (no rows when maintenance never ran)."""
    dt = MAINTENANCE_TABLE.open(MAINTENANCE_TABLE.uri(control_root, pipeline), storage_options)
    return (MAINTENANCE_TABLE.scan(dt, storage_options)
            .filter((pl.col("uri") == uri) & (pl.col("version") > version)).sort("ran_at").collect())
