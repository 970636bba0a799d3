"""Objects and file hashes: bytes put and read through deltalake's object store (a local
folder, ``s3://``, ``abfss://``, ``gs://`` alike), and the sha256 of a partition's data files.

A write hashes the bytes it puts (:attr:`~pipelines.storage.TableRef.files`); the integrity
check and re-publishing read the files back and hash them again.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from deltalake import DeltaTable
from deltalake.exceptions import DeltaError

from pipelines.errors import StorageError
from pipelines.storage.tables import _predicate, open_table, partition_sizes


def object_path(log_path: str) -> str:
    """The object-store path (relative to the table root) of a data file the Delta log names
    ``log_path`` (the log percent-encodes it)."""
    return unquote(log_path)


def file_digest(data: bytes | memoryview) -> dict[str, Any]:
    """``{"sha256": hex, "size": bytes}`` of a data file's bytes (what a :class:`TableRef`,
    a profile and a certification record per file)."""
    return {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


def put_object(root: str, path: str, data: bytes, storage_options: dict[str, str] | None = None) -> int:
    """Write ``data`` to ``<root>/<path>`` through deltalake's object store (a local folder,
    ``s3://``, ``abfss://``, ``gs://`` alike, with the same storage options as the tables);
    returns the bytes written. Parent folders of a local path are created."""
    from deltalake._internal import DeltaFileSystemHandler  # the object store behind deltalake.fs

    out = DeltaFileSystemHandler(root, options=storage_options or None).open_output_stream(path)
    try:
        out.write(data)
    finally:
        out.close()  # type: ignore[attr-defined]  # (not in the stub) completes the upload
    return len(data)


def read_object(root: str, path: str, storage_options: dict[str, str] | None = None) -> bytes:
    """The bytes of ``<root>/<path>`` through deltalake's object store (as :func:`put_object`
    writes them), fetched once: every byte the store holds now, whatever a log says its size is."""
    if "://" not in root or root.startswith("file://"):  # local disk: one read, no copy through the store
        base = unquote(root[len("file://"):]) if root.startswith("file://") else root
        return (Path(base) / path).read_bytes()
    from deltalake._internal import DeltaFileSystemHandler  # the object store behind deltalake.fs

    f = DeltaFileSystemHandler(root, options=storage_options or None).open_input_file(path)
    try:
        return f.read(f.size())
    finally:
        f.close()  # type: ignore[attr-defined]  # (not in the stub)


def _file_hashes(dt: DeltaTable, uri: str, partition: dict[str, str],
                 storage_options: dict[str, str] | None) -> dict[str, dict[str, Any]]:
    try:
        return {p: file_digest(read_object(uri, object_path(p), storage_options))
                for p in sorted(partition_sizes(dt, partition))}
    except (DeltaError, OSError) as exc:
        raise StorageError(f"{uri}: cannot read the data files of {_predicate(partition) or 'the table'} "
                           f"at version {dt.version()} to hash them: {exc}", uri=uri) from exc


def partition_file_hashes(
    uri: str, version: int, partition: dict[str, str], storage_options: dict[str, str] | None = None,
) -> dict[str, dict[str, Any]]:
    """The data files of one partition at ``version``, each read through deltalake's object
    store and hashed: ``{path as the Delta log names it: {"sha256": hex, "size": bytes}}``
    (``{}`` for an empty partition). For writes that did not hash the bytes they put."""
    dt = open_table(uri, storage_options, version)
    if dt is None:
        raise StorageError(f"{uri}: no Delta table (version {version})", uri=uri)
    return _file_hashes(dt, uri, partition, storage_options)


def _written_files(dt: DeltaTable, uri: str, partition: dict[str, str], written: dict[str, dict[str, Any]],
                   storage_options: dict[str, str] | None, logged: dict[str, int]) -> dict[str, dict[str, Any]]:
    """The partition's files at ``dt``'s version (``logged``: their :func:`partition_sizes`),
    with the hashes taken while writing them (keyed by the object path put); read and hashed
    again only when the log holds other files than the ones written (a concurrent writer
    replaced the partition meanwhile)."""
    if {object_path(p) for p in logged} == set(written):
        return {p: written[object_path(p)] for p in sorted(logged)}
    return _file_hashes(dt, uri, partition, storage_options)
