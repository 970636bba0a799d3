"""The steps of one region for one interval: ingest, transform, validate (and the reconcile
step over every region), each writing its tables, profiles and check results."""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, ParamSpec, TypeVar

import polars as pl

from pipelines.control.index import refresh_once
from pipelines.control.results import CheckResult, record_results
from pipelines.errors import FeatureError
from pipelines.features import FeatureContext, load_transform
from pipelines.sources import read_source
from pipelines.spec import Interval, PipelineSpec, TableSpec, date_range, partition_key
from pipelines.storage import (
    TableRef,
    control_tables,
    fingerprint,
    interval_app_id,
    open_table,
    partitions_identity,
    read_partitions,
    table_version,
    unchanged,
    versions_once,
    write_interval,
)
from pipelines.version import CODE_VERSION

log = logging.getLogger(__name__)


def new_run_id() -> str:
    return f"lockstep__{datetime.now().strftime('%Y%m%dT%H%M%S')}_{uuid.uuid4().hex[:6]}"


_P = ParamSpec("_P")
_R = TypeVar("_R")


def region_step(step: Callable[_P, _R]) -> Callable[_P, _R]:
    """A region's step (its first argument the spec): the region's control tables it appends
    to (evidence, check results) are opened once for the step (or the region's run holding
    it), and what it appends to each is committed once, when the step (or the run) ends
    (deferred appends, :class:`~pipelines.storage.OpenTables`); its interval index is
    refreshed once then (:func:`~pipelines.control.index.refresh_once`), however many tables
    it published; a table version it reads is opened once (:func:`~pipelines.storage.versions_once`)."""

    @functools.wraps(step)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        spec = args[0]
        assert isinstance(spec, PipelineSpec)
        with control_tables(spec.control_options()), refresh_once(), versions_once():
            return step(*args, **kwargs)

    return run


def _app_id(spec: PipelineSpec, region: str, layer: str, table: str, interval: Interval) -> str:
    return interval_app_id(spec.name, region, layer, table, interval.key)


@region_step
def ingest(spec: PipelineSpec, interval: Interval, region: str, *, root: str | None = None, force: bool = False,
           run_id: str = "") -> list[TableRef]:
    """Land every raw and reference table of one region for one interval, and publish the
    profile of every version written (a skipped, unchanged write re-publishes a missing one)."""
    from pipelines.control.evidence import ensure_published, publish_write
    from pipelines.evidence import profile_plan, totals_of

    opts = spec.region_options(region)
    refs = []
    for t in spec.tables_in("raw", "reference"):
        read = read_source(spec, t, region, interval)
        frame = read.frame.collect() if isinstance(read.frame, pl.LazyFrame) else read.frame
        fp = fingerprint("ingest", CODE_VERSION, read.identity, t.model_dump(mode="json"))
        ref = write_interval(
            spec.table_uri(region, t.layer, t.name, root), frame,
            partition=interval.partition(t.partition_by), app_id=_app_id(spec, region, t.layer, t.name, interval),
            fingerprint=fp, storage_options=opts, force=force,
        )
        if ref.skipped:
            log.info("%s: %s %s unchanged (same source, same code): kept v%d, nothing written", region, t.path,
                     interval.key, ref.version)
            ensure_published(spec, region, t, t.layer, interval, ref, root=root, run_id=run_id, fingerprint=fp,
                             source_columns=t.layer == "raw")
        else:
            log.info("%s: %s %s landed as v%d (%d rows)", region, t.path, interval.key, ref.version, ref.rows)
            source = totals_of(frame, profile_plan(spec, t)["totals"]) if t.layer == "raw" else None
            publish_write(spec, region, t, t.layer, interval, frame, ref, root=root, run_id=run_id, source=source,
                          fingerprint=fp)
        refs.append(ref)
    return refs


def _lookback_values(interval: Interval, lookback: timedelta, partition_by: list[str] | None = None) -> list[str]:
    """Keys of the input partitions a transform needs: from the one holding ``start - lookback``
    to the interval's own, no later ('2026-01-01' days, '2026-01-01T05' hours,
    '2026-01-01T05:15' minute partitions): a later interval landing never changes what an
    earlier one reads."""
    cols = [c for c in partition_by or ["ds"] if c in ("ds", "hour", "minute")]
    if cols == ["ds"]:
        first = (interval.start - lookback).date()
        return [d.isoformat() for d in date_range(first, interval.start.date())]
    step = timedelta(hours=1) if cols == ["ds", "hour"] else min(interval.length, timedelta(hours=1))
    t = Interval.containing(interval.start - lookback, "hour").start
    while t + step <= interval.start - lookback:
        t += step
    keys = []
    while t < interval.end:
        keys.append(partition_key(Interval(start=t, end=t + step).partition(cols)))
        t += step
    return keys


def _read_input(uri: str, partition_by: list[str], keys: list[str], version: int,
                opts: dict[str, str]) -> tuple[list[Any], pl.LazyFrame | None]:
    """The input partitions ``keys`` at ``version``: their (key, file) identity and a lazy scan.
    Daily inputs select by ds; sub-daily ones by (ds, hour[, minute]), pruned by ds first."""
    cols = [c for c in partition_by if c in ("ds", "hour", "minute")]
    if cols == ["ds"]:
        return (partitions_identity(uri, "ds", keys, version=version, storage_options=opts),
                read_partitions(uri, "ds", keys, version=version, storage_options=opts))
    days = sorted({k[:10] for k in keys})
    lf = read_partitions(uri, "ds", days, version=version, storage_options=opts)
    dt = open_table(uri, opts, version)
    if lf is None or dt is None:
        return [], None

    def key_of(prefix: str) -> pl.Expr:
        parts: list[pl.Expr | str] = [pl.col(f"{prefix}ds")]
        for c, sep in (("hour", "T"), ("minute", ":")):
            if c in cols:
                parts += [pl.lit(sep), pl.col(f"{prefix}{c}").cast(pl.String)]
        return pl.concat_str(parts)

    import pyarrow as pa

    actions = pl.from_arrow(pa.table(dt.get_add_actions(flatten=True)))
    assert isinstance(actions, pl.DataFrame)
    identity: list[Any] = []
    if actions.height and all(f"partition.{c}" in actions.columns for c in cols):
        picked = actions.select(key=key_of("partition."), path="path").filter(pl.col("key").is_in(keys))
        identity = [[k, p] for k, p in picked.sort("key", "path").iter_rows()]
    return identity, lf.filter(key_of("").is_in(keys))


def _outside_interval(data: pl.DataFrame, table: TableSpec, interval: Interval,
                      tolerance: timedelta = timedelta(0)) -> list[str]:
    """Why rows of a transform's output are not its interval's (empty: all are): a partition
    column saying another interval, or an event time outside [start - tolerance, end +
    tolerance) (a row delivered in the interval may lie that far outside it; a snapshot table
    may stamp every row with the interval's close instead)."""
    out = []
    for col, want in interval.partition(table.partition_by).items():
        if col in data.columns:
            n = data.filter(pl.col(col).cast(pl.String).ne_missing(want)).height
            if n:
                out.append(f"{n} row(s) with {col} other than {want}")
    et = table.event_time
    if et and et in data.columns and data.height and isinstance(data.schema[et], pl.Datetime):
        dtype = data.schema[et]
        tz = dtype.time_zone if isinstance(dtype, pl.Datetime) else None
        lo, hi = interval.start - tolerance, interval.end + tolerance
        start, end = (lo, hi) if tz else (lo.replace(tzinfo=None), hi.replace(tzinfo=None))
        times = data.get_column(et).drop_nulls()
        close = interval.end if tz else interval.end.replace(tzinfo=None)
        snapshot = times.len() > 0 and times.min() == times.max() == close  # every row stamped at the close
        n = 0 if snapshot else times.filter(~times.is_between(start, end, closed="left")).len()
        if n:
            out.append(f"{n} row(s) with {et} outside [{lo:%Y-%m-%d %H:%M:%S}, {hi:%Y-%m-%d %H:%M:%S})")
    return out


@region_step
def transform(spec: PipelineSpec, interval: Interval, region: str, *, root: str | None = None, force: bool = False,
              run_id: str = "", stands: bool = False) -> list[TableRef]:
    """Compute every feature set of one region for one interval.

    A write's fingerprint covers exactly what feeds the interval: the data files of the input
    partitions it reads (its lookback included), not the input tables' latest versions, so
    later intervals landing in the same tables do not make an older interval's features look
    changed; re-running an unchanged interval writes nothing. ``stands``: the interval's
    certification stands, so an unchanged feature set's lookback coverage (recorded for its
    version when it was computed) is not recorded again."""
    from pipelines.control.evidence import ensure_published, publish_write
    from pipelines.features.coverage import lookback_coverage

    opts = spec.region_options(region)
    refs = []
    coverage: list[CheckResult] = []
    loaded: dict[tuple[str, tuple[str, ...]], tuple[list[Any], pl.LazyFrame, int]] = {}
    for fs in spec.features:
        inputs: dict[str, pl.LazyFrame] = {}
        identities: dict[str, list[Any]] = {}
        read_versions: dict[str, int | None] = {}
        for name in fs.inputs:
            t = spec.table(name)
            uri = spec.table_uri(region, t.layer, t.name, root)
            values = _lookback_values(interval, timedelta(0) if t.layer == "reference" else fs.lookback, t.partition_by)
            key = (name, tuple(values))
            if key not in loaded:  # feature sets sharing an input resolve it once
                version = table_version(uri, opts)
                ident, lf = (None, None) if version is None else _read_input(uri, t.partition_by, values, version, opts)
                if lf is None or version is None:
                    raise FeatureError(f"{region}: input {t.path} of feature set {fs.name!r} does not exist yet; ingest first")
                loaded[key] = (ident or [], lf, version)
            identities[name], inputs[name], read_versions[name] = loaded[key]
        out = spec.table(fs.output)
        lineage = _lineage(spec, fs.inputs, identities, read_versions)
        fp = fingerprint("transform", CODE_VERSION, fs.model_dump(mode="json"), identities)
        app_id = _app_id(spec, region, out.layer, out.name, interval)
        uri = spec.table_uri(region, out.layer, out.name, root)
        ctx = FeatureContext(interval=interval, region=region, version=fs.version, params=fs.params)
        partition = interval.partition(out.partition_by)
        prior = None if force else unchanged(uri, partition, app_id, fp, opts)
        # history the lookback reaches but the inputs lack: a check bound to the version written
        cov = lookback_coverage(spec, fs, interval, region, root=root, versions=read_versions)
        coverage.append(cov)
        if prior is not None and prior.skipped:  # unchanged inputs: nothing to compute
            log.info("%s: %s %s unchanged (same input files, same code): kept v%d, nothing computed", region,
                     out.path, interval.key, prior.version)
            ensure_published(spec, region, out, out.layer, interval, prior, root=root, run_id=run_id, fingerprint=fp,
                             inputs=lineage)
            cov.table_version = prior.version
            if stands:
                coverage.pop()
            refs.append(prior)
            continue
        try:
            frame = load_transform(fs)(inputs, ctx)
        except FeatureError:
            raise
        except Exception as exc:
            raise FeatureError(f"{region}: feature set {fs.name!r} failed: {exc}", region=region) from exc
        data = frame.collect() if isinstance(frame, pl.LazyFrame) else frame
        # inputs' rows are featured in their delivery interval within their tables' tolerance
        tolerance = max(spec.event_time_tolerance(spec.table(n)) for n in [*fs.inputs, fs.output])
        outside = _outside_interval(data, out, interval, tolerance)
        if outside:  # never written: the rows would land in (and duplicate keys of) another interval
            raise FeatureError(f"{region}: feature set {fs.name!r} returned rows outside its interval {interval.key}: "
                               f"{'; '.join(outside)}; nothing written", region=region)
        ref = write_interval(uri, data, partition=partition, app_id=app_id, fingerprint=fp, storage_options=opts,
                             force=force)
        publish_write(spec, region, out, out.layer, interval, data, ref, root=root, run_id=run_id, fingerprint=fp,
                      inputs=lineage)
        log.info("%s: %s v%d computed from %s", region, out.path, ref.version,
                 ", ".join(f"{k} v{v['version']}" for k, v in lineage.items()))
        cov.table_version = ref.version
        refs.append(ref)
    record_results(spec.control_root(root), spec.name, interval.key, run_id, coverage, spec.control_options(),
                   region=region)
    return refs


def _lineage(spec: PipelineSpec, names: list[str], identities: dict[str, list[Any]],
             versions: dict[str, int | None]) -> dict[str, Any]:
    """What a derived version was computed from, for its profile: per input ("raw/transactions"),
    the Delta version read and the data files of every partition read (the lookback's too).
    The gate certifies the derived version only with exactly these inputs in its generation."""
    out: dict[str, Any] = {}
    for name in names:
        t = spec.table(name)
        parts: dict[str, list[str]] = {}
        for key, path in identities.get(name) or []:
            parts.setdefault(str(key), []).append(str(path))
        out[t.path] = {"version": versions.get(name), "partitions": {k: sorted(v) for k, v in sorted(parts.items())}}
    return out


INPUT_LAYERS = ("raw", "reference")
OUTPUT_LAYERS = ("features",)


@region_step
def validate(
    spec: PipelineSpec, interval: Interval, region: str, *, layers: tuple[str, ...] | None = None,
    root: str | None = None, run_id: str = "",
) -> list[CheckResult]:
    """Run the region's expectation suites on the tables of ``layers`` (default: all), apply
    their policies (quarantine moves failing rows aside) and record the results, each bound to
    the table version it judged."""
    if not spec.validation.enabled:
        return []
    from pipelines.validation import validate_region

    return validate_region(spec, interval, region, layers=layers, root=root, run_id=run_id)


def reconcile(spec: PipelineSpec, interval: Interval, *, root: str | None = None, run_id: str = "",
              undelivered: dict[str, str] | None = None) -> list[CheckResult]:
    """Run the cross-region checks of the spec from the evidence store (nothing certified
    here). A check that cannot import or run is a blocking result with its reason.
    ``undelivered``: region -> why it did not deliver in this run (the orchestrator's view)."""
    return run_gate_checks(spec, interval, root=root, run_id=run_id, undelivered=undelivered)


def run_gate_checks(spec: PipelineSpec, interval: Interval, *, root: str | None = None, run_id: str = "",
                    undelivered: dict[str, str] | None = None) -> list[CheckResult]:
    """The cross-region checks, failing closed: when the reconciliation package cannot even be
    imported, the result is one blocking check naming the error (never an empty list)."""
    try:
        from pipelines.reconcile import run_checks
    except Exception as exc:  # fail closed: no checks is never a pass
        return [CheckResult(stage="reconcile", check_id="reconcile.import", check_type="generation", region="*",
                            table="*", policy="block", success=False,
                            message=f"reconciliation could not be imported: {type(exc).__name__}: {exc}")]
    return run_checks(spec, interval, root=root, run_id=run_id, undelivered=undelivered)
