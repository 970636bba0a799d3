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

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict

from pipelines.certify import Decision, gate
from pipelines.checks import CheckResult, latest_results, record_results
from pipelines.errors import FeatureError
from pipelines.features import FeatureContext, load_transform
from pipelines.preflight import preflight
from pipelines.sources import read_source
from pipelines.spec import Interval, PipelineSpec, date_range, load_spec
from pipelines.storage import (
    TableRef,
    fingerprint,
    interval_app_id,
    read_partitions,
    table_uri,
    table_version,
    write_interval,
)

CODE_VERSION = "0.1.0"


def new_run_id() -> str:
    return f"lockstep__{datetime.now().strftime('%Y%m%dT%H%M%S')}_{uuid.uuid4().hex[:6]}"


def _app_id(spec: PipelineSpec, region: str, layer: str, table: str, interval: Interval) -> str:
    return interval_app_id(spec.name, region, layer, table, interval.key)


def ingest(spec: PipelineSpec, interval: Interval, region: str, *, root: str | None = None, force: bool = False) -> list[TableRef]:
    """Land every raw and reference table of one region for one interval."""
    root = spec.root(root)
    opts = spec.storage.resolved_options()
    refs = []
    for t in spec.tables_in("raw", "reference"):
        read = read_source(spec, t, region, interval)
        fp = fingerprint("ingest", CODE_VERSION, read.identity, t.model_dump(mode="json"))
        refs.append(
            write_interval(
                table_uri(root, spec.name, region, t.layer, t.name), read.frame,
                partition=interval.partition(t.partition_by), app_id=_app_id(spec, region, t.layer, t.name, interval),
                fingerprint=fp, storage_options=opts, force=force,
            )
        )
    return refs


def _lookback_values(interval: Interval, lookback: timedelta) -> list[str]:
    first = (interval.start - lookback).date()
    return [d.isoformat() for d in date_range(first, interval.start.date())]


def transform(spec: PipelineSpec, interval: Interval, region: str, *, root: str | None = None, force: bool = False) -> list[TableRef]:
    """Compute every feature set of one region for one interval."""
    root = spec.root(root)
    opts = spec.storage.resolved_options()
    refs = []
    loaded: dict[tuple[str, tuple[str, ...]], tuple[int | None, pl.LazyFrame]] = {}
    for fs in spec.features:
        inputs: dict[str, pl.LazyFrame] = {}
        versions: dict[str, int | None] = {}
        for name in fs.inputs:
            t = spec.table(name)
            uri = table_uri(root, spec.name, region, t.layer, t.name)
            values = [interval.ds] if t.layer == "reference" else _lookback_values(interval, fs.lookback)
            key = (name, tuple(values))
            if key not in loaded:  # feature sets sharing an input resolve it once
                version = table_version(uri, opts)
                lf = read_partitions(uri, "ds", values, version=version, storage_options=opts)
                if lf is None:
                    raise FeatureError(f"{region}: input {t.path} of feature set {fs.name!r} does not exist yet; ingest first")
                loaded[key] = (version, lf)
            versions[name], inputs[name] = loaded[key]
        out = spec.table(fs.output)
        fp = fingerprint("transform", CODE_VERSION, fs.model_dump(mode="json"), versions)
        app_id = _app_id(spec, region, out.layer, out.name, interval)
        uri = table_uri(root, spec.name, region, out.layer, out.name)
        ctx = FeatureContext(interval=interval, region=region, version=fs.version, params=fs.params)
        try:
            frame = load_transform(fs)(inputs, ctx)
        except FeatureError:
            raise
        except Exception as exc:
            raise FeatureError(f"{region}: feature set {fs.name!r} failed: {exc}", region=region) from exc
        refs.append(write_interval(uri, frame, partition=interval.partition(out.partition_by), app_id=app_id,
                                   fingerprint=fp, storage_options=opts, force=force))
    return refs


INPUT_LAYERS = ("raw", "reference")
OUTPUT_LAYERS = ("features",)


def validate(
    spec: PipelineSpec, interval: Interval, region: str, *, layers: tuple[str, ...] | None = None,
    root: str | None = None, run_id: str = "",
) -> list[CheckResult]:
    """Run the region's expectation suites on the tables of ``layers`` (default: all), apply
    their policies (quarantine moves failing rows aside) and record the results."""
    if not spec.validation.enabled:
        return []
    from pipelines import validation

    run = getattr(validation, "validate_region", None)
    return run(spec, interval, region, layers=layers, root=root, run_id=run_id) if run else []


def reconcile(spec: PipelineSpec, interval: Interval, *, root: str | None = None, run_id: str = "") -> list[CheckResult]:
    """Run the cross-region checks of the spec (nothing certified here)."""
    try:
        from pipelines import reconcile as rec
    except ImportError:  # pragma: no cover
        return []
    run = getattr(rec, "run_checks", None)
    return run(spec, interval, root=root, run_id=run_id) if run else []


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
    refs = ingest(spec, interval, region, root=root, force=force)
    checks = validate(spec, interval, region, layers=INPUT_LAYERS, root=root, run_id=run_id)
    refs += transform(spec, interval, region, root=root, force=force)
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
    on_region: Callable[[RegionRun], None] | None = None,
) -> IntervalRun:
    """Run one interval: every region (or ``regions``), then reconcile and gate.

    With a subset of regions, the gate still judges the whole generation (the other regions'
    tables stay at their current versions).
    """
    preflight(spec, interval, regions, root=root)  # one clear error before anything is written
    t0 = time.perf_counter()
    run_id = run_id or new_run_id()
    runs = []
    for region in spec.regions if regions is None else regions:
        unknown = region not in spec.regions
        if unknown:
            from pipelines.errors import SpecError

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


def reconcile_step(spec: PipelineSpec, interval: Interval, *, root: str | None = None, run_id: str = "") -> list[CheckResult]:
    """Run the cross-region checks and record their results (certifies nothing)."""
    checks = reconcile(spec, interval, root=root, run_id=run_id)
    record_results(spec.root(root), spec.name, interval.key, run_id, checks, spec.storage.resolved_options())
    return checks


def gate_step(spec: PipelineSpec, interval: Interval, *, root: str | None = None, run_id: str = "") -> Decision:
    """Certify or block the interval's generation from its recorded results: the newest
    validation result of each (region, table, check) and this run's reconciliation."""
    from pipelines.reconcile import generation_of

    recorded = latest_results(spec.root(root), spec.name, interval.key, run_id, spec.storage.resolved_options())
    # certify exactly the versions the checks judged, even if a table moved on since
    return gate(spec, interval, recorded, root=root, run_id=run_id, generation=generation_of(recorded))


# --------------------------------------------------------------------------- task payloads
Step = Literal["ingest", "validate_inputs", "transform", "validate", "region", "reconcile", "gate"]


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
    force: bool = False

    @property
    def interval(self) -> Interval:
        return Interval(start=self.interval_start, end=self.interval_end)


def run_step(payload: StepPayload) -> dict[str, Any]:
    """Run one step described by a payload; returns references only."""
    spec = load_spec(payload.spec)
    preflight(spec, payload.interval, None if payload.region is None else [payload.region], root=payload.root)
    iv, root = payload.interval, payload.root
    if payload.step in ("ingest", "validate_inputs", "transform", "validate", "region"):
        if payload.region is None:
            raise ValueError(f"step {payload.step} needs a region")
        region = payload.region
        if payload.step == "ingest":
            return {"tables": [r.to_dict() for r in ingest(spec, iv, region, root=root, force=payload.force)]}
        if payload.step == "transform":
            return {"tables": [r.to_dict() for r in transform(spec, iv, region, root=root, force=payload.force)]}
        if payload.step in ("validate_inputs", "validate"):
            layers = INPUT_LAYERS if payload.step == "validate_inputs" else OUTPUT_LAYERS
            checks = validate(spec, iv, region, layers=layers, root=root, run_id=payload.run_id)
            return {"checks": len(checks), "blocking": sum(c.blocking for c in checks)}
        rr = run_region(spec, iv, region, root=root, run_id=payload.run_id, force=payload.force)
        return {"tables": [r.to_dict() for r in rr.tables], "blocking": len(rr.blocking)}
    if payload.step == "reconcile":
        checks = reconcile_step(spec, iv, root=root, run_id=payload.run_id)
        return {"checks": len(checks), "blocking": sum(c.blocking for c in checks)}
    decision = gate_step(spec, iv, root=root, run_id=payload.run_id)
    return {"status": decision.status, "generation_id": decision.generation_id, "reasons": decision.reasons}
