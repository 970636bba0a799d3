"""The spec field reference, generated from the pydantic models (``docs/spec-reference.md``).

Every field of every model a spec is made of: its YAML path, type, default, description and
an example. ``lockstep schema --markdown`` prints it; a test fails when the committed file
differs from what the models generate, so the reference never drifts from the code.
"""

from __future__ import annotations

import json
import types
import typing
from datetime import date, timedelta
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

HEADER = """# Spec reference

Generated from the models in `pipelines/spec/` by `lockstep schema --markdown`; do not
edit by hand (`tests/test_init.py` fails when this file is out of date). The JSON Schema
is `lockstep schema`; specs that begin with
`# yaml-language-server: $schema=pipeline.schema.json` get completion and checks in editors.

Conventions: unknown fields are errors. Durations are `90s`, `5m`, `2h`, `7d`, `1w`.
`${VAR}` and `${VAR:-default}` read the environment in every string of `storage` and
`sources` (an unset variable without a default is an error naming the field and the
variable). Relative paths (`storage.root`, file-source `path`, `validation.suites_dir`,
`reconcile.control_totals.global_control`, transform files) resolve against the spec file's
folder; for a spec shipped inside the installed package, `storage.root` resolves against
the working directory. `LOCKSTEP_ROOT` (or `--root`) overrides `storage.root`.
"""

#: "Model.field": (description, example) -- the description is used where the model has none
#: (the model's own wins), the example where the model gives none
SUPPLEMENT: dict[str, tuple[str, Any]] = {
    "PipelineSpec.name": ("the pipeline's name: its DAG id and its folder under the storage root", "payments"),
    "PipelineSpec.description": ("shown as the DAG's description and docs in Airflow", "Payments features per region"),
    "PipelineSpec.schedule": ("cron expression or @daily / @hourly; None for manual runs only", "@daily"),
    "PipelineSpec.granularity": ("the interval a run processes: a day (partitioned by ds) or an hour (ds, hour)", "day"),
    "PipelineSpec.start_date": ("first data interval of the DAG", "2026-01-01"),
    "PipelineSpec.regions": ("region ids, each matching ^[a-z][a-z0-9-]{1,31}$", ["eu-west", "us-east"]),
    "PipelineSpec.storage": ("where the Delta tables live", {"root": "./lockstep-data"}),
    "PipelineSpec.sources": ("named inputs that raw and reference tables read", {"transactions": {"kind": "parquet", "path": "landing/{region}/{ds}.parquet"}}),
    "PipelineSpec.tables": ("every table of the pipeline, stored per region", [{"name": "transactions", "layer": "raw", "source": "transactions", "keys": ["txn_id"]}]),
    "PipelineSpec.features": ("feature sets: a transform from input tables to one features table", [{"name": "card", "transform": "features.py:card_features", "inputs": ["transactions"], "output": "card_features"}]),
    "PipelineSpec.validation": ("Great Expectations suites per table", {"suites_dir": "expectations"}),
    "PipelineSpec.reconcile": ("checks across regions, run by the gate", {"parity": [{"table": "fx_rates", "keys": ["currency"]}]}),
    "PipelineSpec.consumers": ("models that read the certified tables", [{"name": "scoring", "tables": ["card_features"], "max_staleness": "2d"}]),
    "PipelineSpec.airflow": ("defaults of the generated DAG", {"retries": 2}),
    "AirflowSpec.retries": ("task retries", 2),
    "AirflowSpec.retry_delay": ("wait between retries", "2m"),
    "AirflowSpec.execution_timeout": ("a task running longer fails", "1h"),
    "AirflowSpec.max_active_runs": ("DAG runs at once", 1),
    "AirflowSpec.max_active_tasks": ("tasks of one DAG at once", 16),
    "AirflowSpec.pool": ("Airflow pool of every task", "lockstep"),
    "AirflowSpec.catchup": ("schedule every interval since start_date", False),
    "AirflowSpec.tags": ("DAG tags", ["lockstep", "payments"]),
    "AirflowSpec.task_granularity": ("", "region"),
    "ConsumerSpec.name": ("", "payments_scoring"),
    "ConsumerSpec.tables": ("", ["customer_features"]),
    "ReconcileSpec.parity": ("replicated tables that must be identical in every region", [{"table": "fx_rates", "keys": ["currency"]}]),
    "ReconcileSpec.control_totals": ("row counts and sums along source -> raw -> features", {"columns": ["amount"]}),
    "ReconcileSpec.drift": ("distribution drift of feature columns across regions and time", [{"table": "card_features", "columns": {"amount": {"psi": 0.2, "ks": 0.1}}}]),
    "ReconcileSpec.freshness": ("newest event times close to each other and to the interval's end", {"table": "card_features", "max_skew": "2h"}),
    "ReconcileSpec.schema_parity": ("every region's tables share one schema and one feature version", {"enabled": True}),
    "SchemaCheck.enabled": ("run the schema check", True),
    "SchemaCheck.policy": ("warn or block", "block"),
    "FreshnessCheck.table": ("table whose event_time is checked", "card_features"),
    "FreshnessCheck.max_skew": ("largest gap between regions' newest event times", "2h"),
    "FreshnessCheck.max_lag": ("largest gap between a region's newest event and the interval's end", "6h"),
    "FreshnessCheck.policy": ("warn or block", "block"),
    "DriftCheck.table": ("features table to compare", "card_features"),
    "DriftCheck.columns": ("column -> thresholds", {"amount": {"psi": 0.2, "ks": 0.1}}),
    "DriftCheck.bins": ("quantile bins of the PSI", 10),
    "DriftCheck.window": ("", 7),
    "DriftCheck.alpha": ("", 0.001),
    "DriftCheck.min_rows": ("", 1000),
    "DriftCheck.policy": ("warn or block", "block"),
    "DriftThreshold.psi": ("population stability index over which the column drifted", 0.2),
    "DriftThreshold.ks": ("two-sample KS statistic over which the column drifted", 0.1),
    "ControlTotalsCheck.columns": ("columns summed along with the row counts", ["amount"]),
    "ControlTotalsCheck.tolerance": ("relative tolerance of sums and counts (0: exact)", 0.0),
    "ControlTotalsCheck.global_control": ("", "control/{ds}.json"),
    "ControlTotalsCheck.policy": ("warn or block", "block"),
    "ParityCheck.table": ("replicated table compared across regions", "fx_rates"),
    "ParityCheck.keys": ("row key", ["currency"]),
    "ParityCheck.columns": ("columns compared (default: all)", ["rate"]),
    "ParityCheck.residency": ("strict: only keys, digests and per-column hashes leave a region", "strict"),
    "ParityCheck.buckets": ("digest-tree buckets per level", 256),
    "ParityCheck.policy": ("warn or block", "block"),
    "ValidationSpec.enabled": ("run the suites", True),
    "ValidationSpec.engine": ("polars (native), gx (Great Expectations' pandas engine) or auto", "auto"),
    "ValidationSpec.suites_dir": ("", "expectations"),
    "ValidationSpec.quarantine_cap": ("", 0.05),
    "ValidationSpec.data_docs": ("write static Data Docs under _lockstep/regions/<region>/data_docs", True),
    "FeatureSetSpec.name": ("the feature set's name", "customer"),
    "FeatureSetSpec.inputs": ("tables the transform reads (inputs[name])", ["transactions", "fx_rates"]),
    "FeatureSetSpec.output": ("the features-layer table it writes", "customer_features"),
    "FeatureSetSpec.version": ("feature definition version: ctx.version, the feature_version column", "2"),
    "FeatureSetSpec.lookback": ("", "7d"),
    "FeatureSetSpec.lookback_coverage": ("", "block"),
    "FeatureSetSpec.params": ("free parameters, as ctx.params", {"min_amount": 1.0}),
    "TableSpec.name": ("table name", "transactions"),
    "TableSpec.layer": ("raw, features, quarantine or reference", "raw"),
    "TableSpec.source": ("", "transactions"),
    "TableSpec.keys": ("", ["txn_id"]),
    "TableSpec.event_time": ("event-time column (freshness, point-in-time features)", "event_time"),
    "TableSpec.partition_by": ("partition columns: ds (daily) or ds, hour (hourly)", ["ds"]),
    "TableSpec.suite": ("", "transactions_v2"),
    "TableSpec.validated": ("", False),
    "TableSpec.replicated": ("", True),
    "TableSpec.columns": ("", [{"name": "amount", "dtype": "Float64", "nullable": False}]),
    "ColumnSpec.name": ("column name", "amount"),
    "ColumnSpec.dtype": ("", "Float64"),
    "ColumnSpec.nullable": ("nulls allowed", False),
    "DeltaSource.kind": ("an existing Delta table", "delta"),
    "DeltaSource.uri": ("table URI; {region} and ${VAR} fill in; relative: against the spec's folder", "s3://${BUCKET}/{region}/fx_rates"),
    "DeltaSource.version": ("pin a table version (default: latest)", 12),
    "DeltaSource.interval_column": ("", "ds"),
    "FileSource.kind": ("file format", "parquet"),
    "FileSource.path": ("file per region and interval: {region}, {ds}, {hour} and ${VAR} fill in; relative: against the spec's folder", "${LANDING_DIR:-landing}/{region}/{ds}.parquet"),
    "FileSource.required": ("", False),
    "SyntheticSource.kind": ("the deterministic generator", "synthetic"),
    "SyntheticSource.dataset": ("transactions or merchant_risk", "transactions"),
    "SyntheticSource.rows_per_region": ("", 20000),
    "SyntheticSource.merchants": ("merchants per region", 2000),
    "SyntheticSource.seed": ("random seed (same seed, same data everywhere)", 7),
    "SyntheticSource.faults": ("named faults to inject", [{"kind": "drift", "regions": ["us-east"], "dates": ["2026-01-02"]}]),
    "FaultSpec.kind": ("the fault", "drift"),
    "FaultSpec.regions": ("regions it hits", ["us-east"]),
    "FaultSpec.dates": ("", ["2026-01-02"]),
    "FaultSpec.magnitude": ("", 3.0),
    "PipelineSpec.maintenance": ("compaction, checkpoints and a vacuum that keeps every version a decision "
                                 "still needs (lockstep maintain)", {"rollback_window": "30d"}),
    "PipelineSpec.alerts": ("", [{"kind": "webhook", "conn_id": "lockstep_oncall"}]),
    "AlertTarget.kind": ("smtp (mail through the connection's server) or webhook (a JSON POST)", "webhook"),
    "AlertTarget.conn_id": ("", "lockstep_oncall"),
    "AlertTarget.to": ("", ["fraud-oncall@example.com"]),
    "AlertTarget.sender": ("", "lockstep@example.com"),
    "AlertTarget.on": ("", ["blocked"]),
    "MaintenanceSpec.rollback_window": ("", "30d"),
    "MaintenanceSpec.min_file_age": ("", "1h"),
    "MaintenanceSpec.target_file_size": ("", 134217728),
    "StorageSpec.root": ("", "s3://${LAKE_BUCKET}/lockstep"),
    "StorageSpec.options": ("", {"AWS_ACCESS_KEY_ID": "${AWS_ACCESS_KEY_ID}", "AWS_REGION": "${AWS_REGION:-eu-west-1}"}),
    "StorageSpec.control_root": ("", "s3://${CONTROL_BUCKET}/lockstep"),
    "StorageSpec.regions": ("", {"eu-west": {"options": {"AWS_REGION": "eu-west-1"}}}),
    "RegionStorageSpec.options": ("", {"AWS_ACCESS_KEY_ID": "${EU_KEY_ID}"}),
}
DESCRIPTIONS = {k: v[0] for k, v in SUPPLEMENT.items() if v[0]}
EXAMPLES = {k: v[1] for k, v in SUPPLEMENT.items()}


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        base = _type_name(args[0])
        if args[0] is timedelta:
            return "duration"
        return base
    if origin in (types.UnionType, typing.Union):
        return " | ".join(_type_name(a) for a in args)
    if origin is typing.Literal:
        return " | ".join(json.dumps(a) for a in args)
    if origin in (list, tuple):
        return f"list[{', '.join(_type_name(a) for a in args)}]"
    if origin is dict:
        return f"map[{_type_name(args[0])}, {_type_name(args[1])}]"
    if annotation is type(None):
        return "null"
    if annotation is timedelta:
        return "duration"
    if isinstance(annotation, type):
        return {str: "string", int: "integer", float: "number", bool: "boolean", date: "date"}.get(
            annotation, annotation.__name__)
    return str(annotation).replace("typing.", "")


def _default(info: FieldInfo) -> str:
    if info.default_factory is not None:
        value = info.default_factory()  # type: ignore[call-arg]
    elif info.default is PydanticUndefined:
        return "required"
    else:
        value = info.default
    if isinstance(value, BaseModel):
        return "(see its fields)"
    if isinstance(value, timedelta):
        return _duration(value)
    return f"`{json.dumps(value, default=str)}`"


def _duration(td: timedelta) -> str:
    s = int(td.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if s % size == 0 and s >= size:
            return f"`{s // size}{unit}`"
    return f"`{s}s`"


def _models(annotation: Any) -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = []
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    for a in typing.get_args(annotation):
        found += _models(a)
    return found


def _rows(model: type[BaseModel], prefix: str, seen: set[type[BaseModel]], out: list[str]) -> None:
    out.append(f"\n## `{prefix or '(top level)'}` — {model.__name__}\n")
    doc = (model.__doc__ or "").strip().splitlines()
    if doc:
        out.append(doc[0] + "\n")
    out.append("| field | type | default | description | example |")
    out.append("| --- | --- | --- | --- | --- |")
    nested: list[tuple[str, type[BaseModel]]] = []
    for fname, info in model.model_fields.items():
        key = f"{model.__name__}.{fname}"
        example = info.examples[0] if info.examples else EXAMPLES.get(key)
        ex = f"`{json.dumps(example)}`" if example is not None else ""
        desc = (info.description or DESCRIPTIONS.get(key, "")).replace("|", "\\|").replace("\n", " ")
        typ = _type_name(info.annotation).replace("|", "\\|")
        out.append(f"| `{fname}` | {typ} | {_default(info)} | {desc} | {ex} |")
        subs = _models(info.annotation)
        for sub in subs:
            path = f"{prefix}.{fname}" if prefix else fname
            if typ.startswith("list["):
                path += "[]"
            elif typ.startswith("map["):
                path += ".<name>"
            if len(subs) > 1:
                path += f" (kind: {_kind(sub)})"
            nested.append((path, sub))
    for path, sub in nested:
        if sub in seen:
            continue
        seen.add(sub)
        _rows(sub, path, seen, out)


def fields() -> list[tuple[str, FieldInfo]]:
    """Every (Model.field, info) of the spec's models, for completeness tests."""
    from pipelines.spec import PipelineSpec

    out: list[tuple[str, FieldInfo]] = []
    todo: list[type[BaseModel]] = [PipelineSpec]
    seen: set[type[BaseModel]] = set()
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.add(model)
        for fname, info in model.model_fields.items():
            out.append((f"{model.__name__}.{fname}", info))
            todo += _models(info.annotation)
    return out


def _kind(model: type[BaseModel]) -> str:
    info = model.model_fields.get("kind")
    if info is None:
        return model.__name__
    return " / ".join(typing.get_args(info.annotation)) or model.__name__


def spec_reference() -> str:
    """The field reference of :class:`~pipelines.spec.PipelineSpec`, as Markdown."""
    from pipelines.spec import PipelineSpec

    out = [HEADER]
    _rows(PipelineSpec, "", {PipelineSpec}, out)
    return "\n".join(out).rstrip() + "\n"
