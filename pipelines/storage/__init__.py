"""Delta Lake IO: idempotent interval writes, versions, history and time travel.

Tables live at ``<root>/<pipeline>/<region>/<layer>/<table>``. A write replaces exactly one
interval's partition (a predicate overwrite) and records a Delta *app transaction* whose id is
``lockstep/<pipeline>/<region>/<layer>/<table>/<interval>`` and whose version is a fingerprint
of the write's inputs. So:

* a retried or re-run write neither duplicates nor drops rows (the partition is replaced);
* a write whose inputs have not changed is skipped without a new table version;
* a write killed midway commits nothing: Delta's log only moves on a successful commit, so
  the table still reads at its previous version.

The package, by concern (every name is importable from ``pipelines.storage``):

* :mod:`~pipelines.storage.tables` - opening tables, a partition's rows and files from the log, reads;
* :mod:`~pipelines.storage.objects` - bytes through deltalake's object store, data-file hashes;
* :mod:`~pipelines.storage.conflicts` - commit conflicts and the back-off loop that retries them
  (its knobs, ``COMMIT_RETRIES`` and ``COMMIT_BACKOFF``, live there);
* :mod:`~pipelines.storage.writes` - idempotent interval writes;
* :mod:`~pipelines.storage.appends` - control-plane appends and one decision's open tables.

Example::

    ref = write_interval(uri, frame, partition={"ds": "2026-01-01"},
                         app_id="lockstep/p/eu-west/raw/t/2026-01-01", fingerprint=fp)
    read_table(uri, partition={"ds": "2026-01-01"}).collect()
"""

from __future__ import annotations

from pipelines.paths import (
    LOCKSTEP_DIR,
    join_uri,
    lockstep_uri,
    region_lockstep_uri,
    region_prefix,
    table_uri,
)
from pipelines.storage.appends import (
    CONTROL_TABLE_CONFIGURATION,
    OpenTables,
    append_in_order,
    append_rows,
    control_tables,
    decision_tables,
)
from pipelines.storage.conflicts import is_commit_conflict, retry_on_conflict
from pipelines.storage.objects import (
    file_digest,
    object_path,
    partition_file_hashes,
    put_object,
    read_object,
)
from pipelines.storage.tables import (
    DELTA_CASTS,
    TableRef,
    fingerprint,
    history,
    interval_app_id,
    open_table,
    partition_actions,
    partition_files,
    partition_predicate,
    partition_rows,
    partition_sizes,
    partitions_identity,
    read_partitions,
    read_table,
    scan_partition,
    table_exists,
    table_version,
    versions_once,
)
from pipelines.storage.writes import Frame, unchanged, write_interval

__all__ = [
    "CONTROL_TABLE_CONFIGURATION",
    "DELTA_CASTS",
    "LOCKSTEP_DIR",
    "Frame",
    "OpenTables",
    "TableRef",
    "append_in_order",
    "append_rows",
    "control_tables",
    "decision_tables",
    "file_digest",
    "fingerprint",
    "history",
    "interval_app_id",
    "is_commit_conflict",
    "join_uri",
    "lockstep_uri",
    "region_lockstep_uri",
    "region_prefix",
    "object_path",
    "open_table",
    "partition_predicate",
    "partition_actions",
    "partition_file_hashes",
    "partition_files",
    "partition_rows",
    "partition_sizes",
    "partitions_identity",
    "put_object",
    "read_object",
    "read_partitions",
    "read_table",
    "retry_on_conflict",
    "scan_partition",
    "table_exists",
    "table_uri",
    "table_version",
    "versions_once",
    "unchanged",
    "write_interval",
]
