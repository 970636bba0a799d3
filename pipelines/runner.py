"""The one runner: every step of a pipeline for an interval, in-process.

The CLI, backfills, tests and Airflow tasks all call these functions. A step takes a spec,
an interval and (for per-region steps) a region, and returns small references - table URIs,
Delta versions, row counts - never frames, so an Airflow task can pass its result through
XCom under any executor.

Steps of one interval::

    for each region:  ingest -> validate_inputs -> transform -> validate   (Airflow maps them)
    then:             reconcile -> gate                    (all regions together)

Example::

    spec = load_spec("fraud_features")
    result = run_interval(spec, Interval.for_date("2026-01-01"))
    result.decision.status     # 'certified' or 'blocked'
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict

from pipelines.control.decisions import Decision
from pipelines.control.results import CheckResult, load_results, record_results, rows_to_results
from pipelines.errors import FeatureError, SpecError
from pipelines.features import FeatureContext, load_transform
from pipelines.generation import generation_of
from pipelines.preflight import preflight, require_closed
from pipelines.sources import read_source
from pipelines.spec import Interval, PipelineSpec, TableSpec, date_range, load_spec, partition_key
from pipelines.storage import (
    OpenTables,
    TableRef,
    decision_tables,
    fingerprint,
    interval_app_id,
    open_table,
    partitions_identity,
    read_partitions,
    table_version,
    unchanged,
    write_interval,
)
from pipelines.version import CODE_VERSION

log = logging.getLogger(__name__)


def new_run_id() -> str:
    return f"lockstep__{datetime.now().strftime('%Y%m%dT%H%M%S')}_{uuid.uuid4().hex[:6]}"


def _app_id(spec: PipelineSpec, region: str, layer: str, table: str, interval: Interval) -> str:
    return interval_app_id(spec.name, region, layer, table, interval.key)


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


def _outside_interval(data: pl.DataFrame, table: TableSpec, interval: Interval) -> list[str]:
    """Why rows of a transform's output are not its interval's (empty: all are): a partition
    column saying another interval, or an event time outside [start, end) (a snapshot table
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
        start, end = ((interval.start, interval.end) if tz else
                      (interval.start.replace(tzinfo=None), interval.end.replace(tzinfo=None)))
        times = data.get_column(et).drop_nulls()
        snapshot = times.len() > 0 and times.n_unique() == 1 and times[0] == end
        n = 0 if snapshot else times.filter(~times.is_between(start, end, closed="left")).len()
        if n:
            out.append(f"{n} row(s) with {et} outside [{interval.start:%Y-%m-%d %H:%M}, {interval.end:%Y-%m-%d %H:%M})")
    return out


def transform(spec: PipelineSpec, interval: Interval, region: str, *, root: str | None = None, force: bool = False,
              run_id: str = "") -> list[TableRef]:
    """Compute every feature set of one region for one interval.

    A write's fingerprint covers exactly what feeds the interval: the data files of the input
    partitions it reads (its lookback included), not the input tables' latest versions, so
    later intervals landing in the same tables do not make an older interval's features look
    changed; re-running an unchanged interval writes nothing."""
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
            refs.append(prior)
            continue
        try:
            frame = load_transform(fs)(inputs, ctx)
        except FeatureError:
            raise
        except Exception as exc:
            raise FeatureError(f"{region}: feature set {fs.name!r} failed: {exc}", region=region) from exc
        data = frame.collect() if isinstance(frame, pl.LazyFrame) else frame
        outside = _outside_interval(data, out, interval)
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
    record_results(spec.control_root(root), spec.name, interval.key, run_id, coverage, spec.control_options())
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


def reconcile(spec: PipelineSpec, interval: Interval, *, root: str | None = None, run_id: str = "") -> list[CheckResult]:
    """Run the cross-region checks of the spec from the evidence store (nothing certified
    here). A check that cannot import or run is a blocking result with its reason."""
    return run_gate_checks(spec, interval, root=root, run_id=run_id)


@dataclass
class RegionRun:
    region: str
    tables: list[TableRef]
    checks: list[CheckResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def blocking(self) -> list[CheckResult]:
        return [c for c in self.checks if c.blocking]


def run_region(spec: PipelineSpec, interval: Interval, region: str, *, root: str | None = None,
               run_id: str = "", force: bool = False) -> RegionRun:
    """ingest -> validate inputs -> transform -> validate features, for one region.

    Inputs are validated before the transform, so rows a policy quarantines never feed a
    feature."""
    t0 = time.perf_counter()
    refs = ingest(spec, interval, region, root=root, force=force, run_id=run_id)
    checks = validate(spec, interval, region, layers=INPUT_LAYERS, root=root, run_id=run_id)
    refs += transform(spec, interval, region, root=root, force=force, run_id=run_id)
    checks += validate(spec, interval, region, layers=OUTPUT_LAYERS, root=root, run_id=run_id)
    return RegionRun(region, refs, checks, time.perf_counter() - t0)


@dataclass
class IntervalRun:
    interval: Interval
    run_id: str
    regions: list[RegionRun]
    checks: list[CheckResult] = field(default_factory=list)
    decision: Decision | None = None
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "interval": self.interval.key,
            "run_id": self.run_id,
            "seconds": round(self.seconds, 3),
            "decision": None if self.decision is None else {
                "status": self.decision.status, "generation_id": self.decision.generation_id,
                "reasons": self.decision.reasons,
            },
            "regions": {
                r.region: {
                    "seconds": round(r.seconds, 3),
                    "tables": [{"table": ref.uri.rsplit("/", 2)[-2] + "/" + ref.uri.rsplit("/", 1)[-1],
                                "version": ref.version, "rows": ref.rows, "skipped": ref.skipped} for ref in r.tables],
                    "blocking_checks": len(r.blocking),
                }
                for r in self.regions
            },
        }


def run_interval(
    spec: PipelineSpec, interval: Interval, regions: list[str] | None = None, *, root: str | None = None,
    run_id: str | None = None, certify: bool = True, force: bool = False,
    on_region: Callable[[RegionRun], None] | None = None, allow_open: bool = False,
) -> IntervalRun:
    """Run one interval: every region (or ``regions``), then reconcile and gate.

    With a subset of regions, the gate still judges the whole generation (the other regions'
    tables stay at their current versions). The interval must have closed plus the sources'
    late allowance (``allow_open``: a test or demo may run one that has not).
    """
    # one clear error before anything is written: an interval that does not exist or has not
    # closed (require_closed) first, then the spec, roots and inputs
    preflight(spec, interval, regions, root=root, allow_open=allow_open)
    t0 = time.perf_counter()
    run_id = run_id or new_run_id()
    runs = []
    for region in spec.regions if regions is None else regions:
        unknown = region not in spec.regions
        if unknown:
            raise SpecError(f"{spec.name}: unknown region {region!r}; regions: {spec.regions}")
        rr = run_region(spec, interval, region, root=root, run_id=run_id, force=force)
        runs.append(rr)
        if on_region:
            on_region(rr)
    result = IntervalRun(interval, run_id, runs)
    if certify:
        result.checks = reconcile_step(spec, interval, root=root, run_id=run_id)
        result.decision = gate_step(spec, interval, root=root, run_id=run_id)
    result.seconds = time.perf_counter() - t0
    return result


def run_gate_checks(spec: PipelineSpec, interval: Interval, *, root: str | None = None, run_id: str = "") -> list[CheckResult]:
    """The cross-region checks, failing closed: when the reconciliation package cannot even be
    imported, the result is one blocking check naming the error (never an empty list)."""
    try:
        from pipelines.reconcile import run_checks
    except Exception as exc:  # fail closed: no checks is never a pass
        return [CheckResult(stage="reconcile", check_id="reconcile.import", check_type="generation", region="*",
                            table="*", policy="block", success=False,
                            message=f"reconciliation could not be imported: {type(exc).__name__}: {exc}")]
    return run_checks(spec, interval, root=root, run_id=run_id)


def reconcile_step(spec: PipelineSpec, interval: Interval, *, root: str | None = None, run_id: str = "",
                   tables: OpenTables | None = None) -> list[CheckResult]:
    """Run the cross-region checks and record their results (certifies nothing). ``tables``:
    the decision's open control tables (:func:`certify_interval` shares them with :func:`gate_step`)."""
    checks = reconcile(spec, interval, root=root, run_id=run_id)
    record_results(spec.control_root(root), spec.name, interval.key, run_id, checks, spec.control_options(),
                   tables=tables)
    return checks


def gate_step(spec: PipelineSpec, interval: Interval, *, root: str | None = None, run_id: str = "",
              tables: OpenTables | None = None, actor: str | None = None) -> Decision:
    """Certify or block the interval's generation from this run's recorded reconciliation:
    exactly the generation it judged (its ``generation.snapshot``), whatever moved since.
    The results are read back from the check-results table at its newest version (through
    ``tables`` when given: the same open table, brought up to date, never results held in memory).
    ``actor``: who decides (an Airflow task's ``airflow:<user>``; default: the settings' identity)."""
    from pipelines.certify import gate

    tables = tables or decision_tables(spec.control_options())
    df = load_results(spec.control_root(root), spec.name, interval.key, run_id, spec.control_options(), tables=tables)
    recorded = rows_to_results(df.filter(pl.col("stage") != "validation"))  # (decoded: this run's reconciliation only)
    return gate(spec, interval, recorded, root=root, run_id=run_id, generation=generation_of(recorded), tables=tables,
                who=actor)


def certify_interval(spec: PipelineSpec, interval: Interval, *, root: str | None = None, run_id: str = "",
                     allow_open: bool = False, actor: str | None = None) -> Decision:
    """Reconcile the interval from the evidence store, record every result, then certify or
    block exactly the generation judged, in one commit to the certification log.

    Results are written before the decision; the decision is one Delta commit holding every
    region's table versions, so a failure anywhere before it leaves no certification at all,
    and a reader never sees some regions of a generation certified and others not. The
    control tables are opened once for the decision (each later use reads only the commits
    since), never kept for another one. An interval that has not closed plus the late
    allowance is refused (``allow_open``: tests and demos). ``actor``: who decides (default:
    the settings' identity).

    Example::

        decision = certify_interval(spec, Interval.for_date("2026-01-01"))
        decision.status, decision.generation_id
    """
    require_closed(spec, interval, allow_open=allow_open)
    run_id = run_id or new_run_id()
    with OpenTables(spec.control_options()) as tables:
        reconcile_step(spec, interval, root=root, run_id=run_id, tables=tables)
        return gate_step(spec, interval, root=root, run_id=run_id, tables=tables, actor=actor)


#: :func:`certify_interval` under its earlier name (``pipelines.certify`` is the package)
certify = certify_interval


# --------------------------------------------------------------------------- task payloads
Step = Literal["ingest", "validate_inputs", "transform", "validate", "region", "reconcile", "gate"]
#: the steps that run in one region (a payload names it)
REGION_STEPS = ("ingest", "validate_inputs", "transform", "validate", "region")


class StepPayload(BaseModel):
    """What one task needs to run one step: small, JSON-able, the same under any executor."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    spec: str
    step: Step
    interval_start: datetime
    interval_end: datetime
    region: str | None = None
    root: str | None = None
    run_id: str = ""
    #: who runs the step: recorded on the decision a gate step makes (a DAG task's
    #: ``airflow:<user>``; empty: the settings' identity, :meth:`~pipelines.spec.settings.Settings.who`)
    actor: str = ""
    force: bool = False
    #: run an interval that has not closed plus the late allowance yet (tests and demos)
    allow_open: bool = False

    @property
    def interval(self) -> Interval:
        return Interval(start=self.interval_start, end=self.interval_end)


def run_step(payload: StepPayload) -> dict[str, Any]:
    """Run one step described by a payload; returns references only."""
    if payload.region is None and payload.step in REGION_STEPS:
        # a malformed payload: no retry mends it, so Airflow fails the task at once
        raise SpecError(f"step {payload.step} needs a region", step=payload.step)
    spec = load_spec(payload.spec)
    preflight(spec, payload.interval, None if payload.region is None else [payload.region], root=payload.root,
              allow_open=payload.allow_open)  # every step, reconcile and gate too: a closed interval only
    iv, root = payload.interval, payload.root
    if payload.step in REGION_STEPS:
        assert payload.region is not None  # checked above
        region = payload.region
        if payload.step == "ingest":
            refs = ingest(spec, iv, region, root=root, force=payload.force, run_id=payload.run_id)
            return {"tables": [r.to_dict() for r in refs]}
        if payload.step == "transform":
            refs = transform(spec, iv, region, root=root, force=payload.force, run_id=payload.run_id)
            return {"tables": [r.to_dict() for r in refs]}
        if payload.step in ("validate_inputs", "validate"):
            layers = INPUT_LAYERS if payload.step == "validate_inputs" else OUTPUT_LAYERS
            checks = validate(spec, iv, region, layers=layers, root=root, run_id=payload.run_id)
            return {"checks": len(checks), "blocking": sum(c.blocking for c in checks)}
        rr = run_region(spec, iv, region, root=root, run_id=payload.run_id, force=payload.force)
        return {"tables": [r.to_dict() for r in rr.tables], "blocking": len(rr.blocking)}
    if payload.step == "reconcile":
        checks = reconcile_step(spec, iv, root=root, run_id=payload.run_id)
        return {"checks": len(checks), "blocking": sum(c.blocking for c in checks)}
    decision = gate_step(spec, iv, root=root, run_id=payload.run_id, actor=payload.actor or None)
    return {"status": decision.status, "generation_id": decision.generation_id, "reasons": decision.reasons}
