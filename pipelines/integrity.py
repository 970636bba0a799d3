"""Files verified at read: a certified version's data files are the bytes that were certified.

Delta's log names a version's data files, but nothing in it stops a file from being replaced
in place afterwards (an operator's copy, a buggy job, a restore of the wrong backup). The
write that puts a file hashes its bytes (:attr:`pipelines.storage.TableRef.files`), the
region's profile carries the hashes, and the gate binds them to the certification. A
certified read then goes through :func:`verified_scan`: it lists the partition's files at the
certified version from the log, fetches each file's bytes once through deltalake's object
store, checks the set of files, every size and every sha256 against the ones bound, and
scans exactly the bytes it verified (no second fetch, so nothing can change between the
check and the read). Anything else is refused with a :class:`CertificationError` naming the
table, the version and the file, and saying what to do.

Example::

    ref = write_interval(uri, frame, partition={"ds": "2026-01-01"}, app_id=..., fingerprint=fp)
    lf = verified_scan(uri, ref.version, {"ds": "2026-01-01"}, ref.files, None, what="eu-west/raw/transactions")
    verify_files(uri, ref.version, {"ds": "2026-01-01"}, ref.files, None, what="eu-west/raw/transactions")
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa
from deltalake import DeltaTable
from deltalake.exceptions import DeltaError

from pipelines.errors import CertificationError, StorageError
from pipelines.storage import (
    DELTA_CASTS,
    file_digest,
    object_path,
    open_table,
    partition_actions,
    read_object,
)

if TYPE_CHECKING:
    from datetime import datetime

    from pipelines.spec import PipelineSpec

__all__ = ["REMEDY", "verified_scan", "verify_files", "verify_members"]

#: what an operator does about a refused file
REMEDY = ("the data changed behind Delta's back after it was certified: re-run the region's interval "
          "(`lockstep run PIPELINE --date INTERVAL --region REGION --force`), then `lockstep certify` it, "
          "or `lockstep rollback` to an earlier generation")

#: files fetched and hashed at once (object-store reads and sha256 release the GIL)
FETCH_THREADS = 8


def _is_panic(exc: BaseException) -> bool:
    """A Rust panic surfaced by pyo3 (``pyo3_runtime.PanicException``: a BaseException, not an
    Exception; every pyo3 extension has its own class of that name, polars exports its own)."""
    kind = type(exc)
    return isinstance(exc, pl.exceptions.PanicException) or (
        kind.__name__ == "PanicException" and kind.__module__ == "pyo3_runtime")


def _refuse(what: str, version: int, problems: list[str]) -> CertificationError:
    shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
    return CertificationError(f"{what}: Delta version {version}: {shown}; {REMEDY}", retryable=False,
                              version=version, problems=problems)


def _listing(uri: str, version: int, partition: dict[str, str], storage_options: dict[str, str] | None,
             what: str) -> tuple[DeltaTable, pl.DataFrame, dict[str, str]]:
    """The table at ``version``, the add actions of the partition's data files (``partition``'s
    keys that are partition columns select them) and the keys that filter rows instead."""
    dt = open_table(uri, storage_options, version)
    if dt is None:
        raise CertificationError(f"{what}: no Delta table at {uri} (version {version}); {REMEDY}", retryable=False)
    if dt.protocol().min_reader_version > 1:
        raise CertificationError(
            f"{what}: Delta version {version} needs reader features (deletion vectors or column mapping) a "
            "verified read does not support: its rows are not just its files' bytes", retryable=False)
    columns = set(dt.metadata().partition_columns)
    parts = {k: v for k, v in partition.items() if k in columns}
    rest = {k: v for k, v in partition.items() if k not in columns}
    return dt, partition_actions(dt, parts), rest


def _set_problems(listed: list[str], expected: dict[str, dict[str, Any]]) -> list[str]:
    if not expected and listed:
        return [f"no file hashes recorded for its {len(listed)} data file(s) ({', '.join(sorted(listed)[:3])}"
                f"{', ...' if len(listed) > 3 else ''}): nothing to verify them against"]
    present = set(listed)
    problems = [f"data file {p} is bound by the certification but not in the Delta log"
                for p in sorted(set(expected) - present)]
    problems += [f"data file {p} is in the Delta log but not bound by the certification"
                 for p in sorted(present - set(expected))]
    return problems


def _fetch(uri: str, path: str, bound: dict[str, Any], storage_options: dict[str, str] | None, keep: bool,
           ) -> tuple[bytes | None, int, str | None]:
    """The file's bytes (fetched once; None unless ``keep``), their size and, when they are not
    the bytes bound, why not."""
    try:
        data = read_object(uri, object_path(path), storage_options)
    except FileNotFoundError:
        return None, 0, f"data file {path} is missing"
    except (DeltaError, OSError, pa.ArrowException, pl.exceptions.PolarsError) as exc:
        return None, 0, f"data file {path} cannot be read ({type(exc).__name__}: {_first_line(exc)})"
    except BaseException as exc:  # a Rust panic is a BaseException: only that is caught (below)
        if not _is_panic(exc):
            raise
        return None, 0, f"data file {path} cannot be read (panic: {_first_line(exc)})"
    got = file_digest(data)
    if got["size"] != int(bound.get("size", -1)):
        return None, 0, f"data file {path} has {got['size']:,} bytes, certified {int(bound.get('size', -1)):,}"
    if got["sha256"] != bound.get("sha256"):
        return None, 0, (f"data file {path} is not the file certified (sha256 {got['sha256'][:16]}..., certified "
                         f"{str(bound.get('sha256'))[:16]}..., same size)")
    return (data if keep else None), len(data), None


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else ""


def _prefetchable(path: str) -> bool:
    """A bound path that may be fetched before the log confirms it (relative, no ``..``)."""
    return not path.startswith("/") and "://" not in path and ".." not in object_path(path).split("/")


def _verified(uri: str, version: int, partition: dict[str, str], expected: dict[str, dict[str, Any]],
              storage_options: dict[str, str] | None, what: str, *, keep: bool,
              ) -> tuple[DeltaTable, pl.DataFrame, dict[str, str], dict[str, bytes], int]:
    """List the partition's files at ``version`` from the log and check them against
    ``expected``, fetching and hashing the bound files (in parallel) while the log is read;
    the set of files is compared before any fetched bytes count."""
    paths = sorted(p for p in expected if _prefetchable(p))
    workers = min(FETCH_THREADS, len(paths))
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {p: pool.submit(_fetch, uri, p, expected[p], storage_options, keep) for p in paths}
        try:
            try:
                dt, actions, rest = _listing(uri, version, partition, storage_options, what)
            except StorageError as exc:
                raise CertificationError(f"{what}: cannot read the Delta log at version {version}: {exc}",
                                         retryable=exc.retryable) from exc
            listed = [str(p) for p in actions["path"]] if actions.height else []
            problems = _set_problems(listed, expected)
            if problems:
                raise _refuse(what, version, problems)
            blobs: dict[str, bytes] = {}
            total = 0
            for path in sorted(listed):
                future = futures.get(path)
                data, size, problem = (future.result() if future is not None
                                       else _fetch(uri, path, expected[path], storage_options, keep))
                if problem is not None:
                    problems.append(problem)
                    continue
                total += size
                if data is not None:
                    blobs[path] = data
            if problems:
                raise _refuse(what, version, problems)
        finally:
            for future in futures.values():
                future.cancel()
    return dt, actions, rest, blobs, total


def verify_files(
    uri: str, version: int, partition: dict[str, str], expected: dict[str, dict[str, Any]],
    storage_options: dict[str, str] | None = None, *, what: str,
) -> dict[str, Any]:
    """Check that the data files of ``partition`` at ``version`` are exactly ``expected``
    (``{path as the Delta log names it: {"sha256", "size"}}``), byte for byte; returns
    ``{"files", "bytes", "seconds"}``. Refuses with a :class:`CertificationError` naming
    ``what`` (the table), the version and every file that differs, is missing or is unbound."""
    t0 = time.perf_counter()
    _, actions, _, _, total = _verified(uri, version, partition, expected, storage_options, what, keep=False)
    return {"files": actions.height, "bytes": total, "seconds": round(time.perf_counter() - t0, 6)}


def verified_scan(
    uri: str, version: int, partition: dict[str, str], expected: dict[str, dict[str, Any]],
    storage_options: dict[str, str] | None = None, *, what: str,
) -> pl.LazyFrame:
    """A lazy scan of ``partition`` of the table at ``version``, over the bytes of its data
    files verified against ``expected`` (``{path as the Delta log names it: {"sha256",
    "size"}}``, the hashes a certification binds): the same columns, types and rows
    :func:`pipelines.storage.read_table` returns for that version and partition.

    Each file is fetched once, through deltalake's object store, and the bytes checked are the
    bytes scanned. Refuses (:class:`CertificationError`, not retryable) when the log's files
    are not the ones expected, when ``expected`` is empty while the partition has files, or
    when a file's bytes have another size or sha256 (or cannot be read): the message names
    ``what``, the version and the file. A key of ``partition`` that is not a partition column
    of the table filters rows."""
    dt, actions, rest, blobs, _ = _verified(uri, version, partition, expected, storage_options, what, keep=True)
    schema = pl.Schema(dt.schema())
    partition_columns = [c for c in dt.metadata().partition_columns if c in schema]
    data_schema = pl.Schema({k: t for k, t in schema.items() if k not in partition_columns})
    scans: list[pl.LazyFrame] = []
    if actions.height:
        # files grouped by their partition values (one group when ``partition`` names them all)
        keys = [f"partition.{c}" for c in partition_columns]
        for values, group in actions.sort("path").group_by(keys or [pl.lit(0)], maintain_order=True):
            sources = [blobs[str(p)] for p in group["path"]]
            lf = pl.scan_parquet(sources, schema=data_schema, missing_columns="insert", extra_columns="ignore",
                                 cast_options=DELTA_CASTS)
            literal = dict(zip(partition_columns, values, strict=False)) if keys else {}
            scans.append(lf.with_columns(pl.lit(literal[c], dtype=pl.String).cast(schema[c]).alias(c)
                                         for c in partition_columns))
    lf = pl.concat(scans, how="vertical") if scans else pl.LazyFrame(schema=schema)
    lf = lf.select(schema.names())
    for k, v in rest.items():
        lf = lf.filter(pl.col(k) == v)
    return lf


def verify_members(
    spec: PipelineSpec, interval_start: datetime, members: dict[str, int], files: dict[str, dict[str, Any]], *,
    regions: list[str] | None = None, root: str | None = None,
) -> list[dict[str, Any]]:
    """:func:`verify_files` for every member (``region/layer/table`` -> Delta version) of one
    interval's generation, against ``files`` (member -> its bound files, as a certification's
    ``bindings["files"]`` holds them), optionally only ``regions``'; one row per member:
    ``{member, version, ok, files, bytes, seconds, problems, error}``. A member without bound
    files fails unless its partition is empty; every member is checked, whatever fails."""
    interval = spec.interval_at(interval_start)
    out: list[dict[str, Any]] = []
    for member, version in sorted(members.items()):
        region, layer, name = member.split("/", 2)
        if regions and region not in regions:
            continue
        table = spec.table(name)
        expected = files.get(member) or {}
        row: dict[str, Any] = {"member": member, "version": int(version), "ok": True, "files": len(expected),
                               "bytes": 0, "seconds": 0.0, "problems": [], "error": ""}
        try:
            row.update(verify_files(spec.table_uri(region, layer, name, root), int(version),
                                    interval.partition(table.partition_by), expected, spec.region_options(region),
                                    what=member))
        except CertificationError as exc:
            row.update(ok=False, problems=list(exc.context.get("problems") or [exc.message]), error=exc.message)
        out.append(row)
    return out
