"""Pipeline specs: the one place Lockstep's configuration is defined.

A spec is YAML that becomes a :class:`PipelineSpec`; everything else in Lockstep receives
these typed objects. Every model forbids unknown fields, so a typo is an error instead of a
silently ignored setting, and :func:`load_spec` turns any problem into one
:class:`~pipelines.errors.SpecError` naming the file, the field path and what was expected.

Example::

    spec = load_spec("dags/fraud_features.yaml")
    spec.regions            # ['eu-west', 'us-east', ...]
    spec.table("card_features").layer   # 'features'
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from pipelines.errors import IntervalError, SpecError

REGION_PATTERN = r"^[a-z][a-z0-9-]{1,31}$"
NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"

Region = Annotated[str, StringConstraints(pattern=REGION_PATTERN)]
Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
Layer = Literal["raw", "features", "quarantine", "reference"]
Policy = Literal["warn", "quarantine", "block"]
CheckPolicy = Literal["warn", "block"]

_DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def _parse_duration(v: Any) -> Any:
    """Accept '90s', '5m', '2h', '7d', '1w' (and anything pydantic reads as a timedelta)."""
    if isinstance(v, str):
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", v)
        if m:
            return timedelta(**{_DURATION_UNITS[m.group(2)]: float(m.group(1))})
    return v


Duration = Annotated[timedelta, BeforeValidator(_parse_duration)]

#: cron presets a schedule may name (Airflow's, without the ones that need no cron)
SCHEDULE_PRESETS = ("@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@quarterly", "@yearly", "@annually")

#: granularities: a day, an hour, or a whole number of minutes that divides an hour
GRANULARITY_PATTERN = r"^(day|hour|(1|2|3|4|5|6|10|12|15|20|30)m)$"

#: Pipeline templates shipped inside the package; each folder holds a loadable spec, so
#: ``load_spec("fraud_features")`` works from an installed wheel.
TEMPLATES_DIR = Path(__file__).resolve().parents[1] / "templates"
#: The flagship's folder (its spec and, one level up, its suites): kept for callers that
#: located the shipped ``dags/`` and ``expectations/`` folders through it.
DAGS_DIR = TEMPLATES_DIR / "fraud_features" / "dags"

_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(value: str, field: str) -> str:
    """Replace every ``${VAR}`` and ``${VAR:-default}`` in ``value`` from the environment.

    An unset (or empty) variable without a default is a :class:`SpecError` naming ``field``
    and the variable: a spec never runs with an empty credential or a half-built path.

    >>> os.environ["BUCKET"] = "lake"
    >>> expand_env("s3://${BUCKET}/eu-${REGION:-west}", "storage.root")
    's3://lake/eu-west'
    """

    def sub(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        got = os.environ.get(name)
        if got:
            return got
        if default is not None:
            return default
        raise SpecError(
            f"{field}: environment variable {name} is not set (write ${{{name}:-default}} for a default)",
            field=field, variable=name,
        )

    return _ENV_RE.sub(sub, value)


def is_local_path(value: str) -> bool:
    """True for a filesystem path, False for a URI with a scheme (``s3://``, ``file://`` …)."""
    return "://" not in value


def resolve_relative(value: str, base: Path | None) -> str:
    """A relative local path joined to ``base`` (the spec's folder); URIs, absolute paths and
    ``~`` paths unchanged, and everything unchanged when there is no base."""
    if base is None or not is_local_path(value) or value.startswith("{"):
        return value  # a URI, or a path that starts with a placeholder ({root}, {region})
    p = Path(value).expanduser()
    return str(p) if p.is_absolute() else os.path.normpath(base / p)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- storage
def _resolve_options(options: dict[str, str], field: str) -> dict[str, str]:
    """A region's own options with ``${VAR}`` values read from the environment."""
    return StorageSpec(options=options).resolved_options(field)


class RegionStorageSpec(_Model):
    """One region's own storage settings (merged over ``storage.options``)."""

    options: dict[str, str] = Field(
        default_factory=dict, description="deltalake storage options of this region's tables; '${VAR}' values",
    )


class StorageSpec(_Model):
    """Where the pipeline's Delta tables live."""

    root: str = Field("./lockstep-data", description="local folder or s3:// abfss:// gs:// URI")
    options: dict[str, str] = Field(
        default_factory=dict,
        description="deltalake storage options; a value '${VAR}' is read from the environment "
        "at run time, so no credential is ever written in a spec",
    )

    def resolved_options(self, field: str = "storage.options") -> dict[str, str]:
        """The options with ``${VAR}`` / ``${VAR:-default}`` read from the environment, at
        run time (never stored in the spec or its hash); an unset variable is a SpecError."""
        return {key: expand_env(value, f"{field}.{key}") for key, value in self.options.items()}

    control_root: str | None = Field(
        None,
        description="where _lockstep (certifications, check results, evidence) lives; default: "
        "the root. Required when the root contains {region}: the control plane is not a region",
    )
    regions: dict[Region, RegionStorageSpec] = Field(
        default_factory=dict, description="per-region storage options (each region its own bucket and credentials)",
    )

    @model_validator(mode="after")
    def _control_plane(self) -> StorageSpec:
        if "{region}" in self.root and self.control_root is None:
            raise ValueError("root contains {region}: set storage.control_root for _lockstep")
        if self.control_root is not None and "{region}" in self.control_root:
            raise ValueError("control_root must not contain {region}")
        return self

    def region_options(self, region: str) -> dict[str, str]:
        """Storage options of one region's tables: the shared options, then the region's own."""
        out = self.resolved_options()
        own = self.regions.get(region)
        if own is not None:
            out.update(_resolve_options(own.options, f"storage.regions.{region}.options"))
        return out


# --------------------------------------------------------------------------- sources
FaultKind = Literal[
    "drift", "stale_reference", "missing_partition", "duplicates", "schema_change", "corrupt_file", "late_rows"
]


class FaultSpec(_Model):
    """A named fault the synthetic source injects, for demos and tests."""

    kind: FaultKind
    regions: list[Region] = Field(min_length=1)
    dates: list[date] = Field(default_factory=list, description="empty: every date")
    hours: list[Annotated[int, Field(ge=0, le=23)]] = Field(
        default_factory=list,
        description="sub-daily pipelines: the hours (UTC) of those dates the fault applies to; empty: every hour",
        examples=[[5]],
    )
    magnitude: float = Field(
        1.0,
        gt=0,
        description="drift: shift of log-amount (sigmas); stale_reference: days behind; "
        "duplicates: fraction of rows repeated (x 1%); late_rows: fraction of rows delivered late (x 10%)",
    )

    def applies(self, region: str, ds: date, hour: int | None = None) -> bool:
        """Does the fault bend ``region``'s delivery of ``ds`` (of ``hour``, in a sub-daily pipeline)?"""
        if region not in self.regions or (self.dates and ds not in self.dates):
            return False
        return hour is None or not self.hours or hour in self.hours


class SyntheticSource(_Model):
    """Deterministic multi-region card-transaction generator (see pipelines.sources.synthetic)."""

    kind: Literal["synthetic"]
    dataset: Literal["transactions", "merchant_risk"]
    rows_per_region: int = Field(20_000, ge=0, description="transactions per region and day")
    merchants: int = Field(2_000, ge=10)
    seed: int = 7
    faults: list[FaultSpec] = Field(default_factory=list)
    late_allowance: Duration = Field(
        timedelta(0),
        description="how long after an interval closes its data may still arrive: the interval is processed "
        "when it closes plus the largest allowance of the pipeline's sources; rows arriving later re-version "
        "and re-certify that interval only",
        examples=["10m", "2h"],
    )


class FileSource(_Model):
    """Files delivered per region and interval: ``path`` may use {region}, {ds} and {hour}."""

    kind: Literal["parquet", "csv", "jsonl"]
    path: str
    required: bool = Field(True, description="a missing file is an error (else: an empty interval)")
    late_allowance: Duration = Field(
        timedelta(0),
        description="how long after an interval closes its data may still arrive: the interval is processed "
        "when it closes plus the largest allowance of the pipeline's sources; rows arriving later re-version "
        "and re-certify that interval only",
        examples=["10m", "2h"],
    )

    @field_validator("path")
    @classmethod
    def _placeholders(cls, v: str) -> str:
        unknown = set(re.findall(r"\{([^}]*)\}", _ENV_RE.sub("", v))) - {"region", "ds", "hour"}
        if unknown:
            raise ValueError(f"unknown placeholder(s) {sorted(unknown)}; use {{region}}, {{ds}}, {{hour}}")
        return v


class DeltaSource(_Model):
    """An existing Delta table per region (``uri`` may use {region})."""

    kind: Literal["delta"]
    uri: str
    version: int | None = None
    interval_column: str | None = Field("ds", description="column to select the interval by")
    late_allowance: Duration = Field(
        timedelta(0),
        description="how long after an interval closes its data may still arrive: the interval is processed "
        "when it closes plus the largest allowance of the pipeline's sources; rows arriving later re-version "
        "and re-certify that interval only",
        examples=["10m", "2h"],
    )


Source = Annotated[SyntheticSource | FileSource | DeltaSource, Field(discriminator="kind")]


# --------------------------------------------------------------------------- tables
class ColumnSpec(_Model):
    name: str
    dtype: str = Field(description="polars dtype name, e.g. Int64, Float64, String, Datetime")
    nullable: bool = True


class TableSpec(_Model):
    """A table of the pipeline, stored per region at <root>/<pipeline>/<region>/<layer>/<name>."""

    name: Name
    layer: Layer
    source: str | None = Field(None, description="name of a source (raw and reference tables)")
    keys: list[str] = Field(default_factory=list, description="unique per interval")
    event_time: str | None = None
    partition_by: list[str] = Field(default_factory=lambda: ["ds"])
    suite: str | None = Field(None, description="expectation suite; default: the table name")
    validated: bool = Field(
        True, description="false: the table has no expectation suite and the gate asks no validation evidence "
        "of it; true (default): its suite must exist and load, or the table cannot be certified",
        examples=[False])
    replicated: bool = Field(False, description="every region must hold it identically")
    columns: list[ColumnSpec] = Field(default_factory=list, description="optional declared schema")

    @property
    def path(self) -> str:
        return f"{self.layer}/{self.name}"

    @property
    def suite_name(self) -> str:
        return self.suite or self.name


class FeatureSetSpec(_Model):
    """A polars transform from input tables to one features table."""

    name: Name
    transform: str = Field(
        pattern=r"^(?:[A-Za-z_][\w.]*|[^:]+\.py):[A-Za-z_]\w*$",
        description="'module:function' (a module importable as installed, or from the spec's folder) "
        "or 'path/to/file.py:function' (relative to the spec's folder)",
        examples=["payments_team.features:customer_features", "transforms.py:customer_features"],
    )
    inputs: list[Name] = Field(min_length=1)
    output: Name
    version: str = "1"
    lookback: Duration = Field(timedelta(days=7), description="history read before the interval")
    lookback_coverage: CheckPolicy = Field(
        "warn",
        description="what a run does when its lookback reaches before the earliest available input "
        "(the check names the missing days): warn records it, block refuses to certify",
    )
    params: dict[str, Any] = Field(default_factory=dict)

    _base: Path | None = PrivateAttr(None)

    @property
    def base_dir(self) -> Path | None:
        """The folder of the spec this feature set was loaded from: transforms import from it."""
        return self._base


# --------------------------------------------------------------------------- validation
class ValidationSpec(_Model):
    """Great Expectations validation of every region's tables (the validation issue fills this)."""

    enabled: bool = True
    engine: Literal["auto", "gx", "polars"] = "auto"
    suites_dir: str = Field("../expectations", description="relative to the spec file")
    quarantine_cap: float = Field(0.01, ge=0, le=1, description="quarantined share that blocks")
    data_docs: bool = True


# --------------------------------------------------------------------------- reconciliation
class ParityCheck(_Model):
    table: Name
    keys: list[str] = Field(min_length=1)
    columns: list[str] | None = None
    residency: Literal["shared", "strict"] = "shared"
    buckets: int = Field(256, ge=1)
    policy: CheckPolicy = "block"


class ControlTotalsCheck(_Model):
    columns: list[str] = Field(default_factory=list)
    tolerance: float = Field(0.0, ge=0)
    global_control: str | None = Field(None, description="path of a global control file")
    policy: CheckPolicy = "block"


class DriftThreshold(_Model):
    psi: float = Field(0.2, gt=0)
    ks: float = Field(0.1, gt=0, le=1)


class DriftCheck(_Model):
    table: Name
    columns: dict[str, DriftThreshold]
    bins: int = Field(10, ge=2)
    window: int = Field(7, ge=1, description="trailing certified intervals to compare with")
    alpha: float = Field(
        0.001, gt=0, lt=1,
        description="a statistic over its threshold blocks only when also significant at this level, "
        "so small samples do not block on noise",
    )
    min_rows: int = Field(
        1000, ge=0, description="a comparison with fewer values on either side is recorded, never blocks",
    )
    policy: CheckPolicy = "block"


class FreshnessCheck(_Model):
    table: Name
    max_skew: Duration = timedelta(hours=2)
    max_lag: Duration = timedelta(hours=6)
    policy: CheckPolicy = "block"


class SchemaCheck(_Model):
    enabled: bool = True
    policy: CheckPolicy = "block"


class ReconcileSpec(_Model):
    """Cross-region checks run by the gate (the reconciliation issue fills this)."""

    parity: list[ParityCheck] = Field(default_factory=list)
    control_totals: ControlTotalsCheck | None = None
    drift: list[DriftCheck] = Field(default_factory=list)
    freshness: FreshnessCheck | None = None
    schema_parity: SchemaCheck = SchemaCheck()


class ConsumerSpec(_Model):
    """A model (or any reader) of the pipeline's certified tables."""

    name: Name = Field(description="the consumer's name (its DAG id, in the helper)")
    tables: list[Name] = Field(description="tables it reads")
    max_staleness: Duration | None = Field(
        None,
        description="the newest certified interval may end at most this long before the consumer's own "
        "logical date (now, outside Airflow); an older one fails the read",
        examples=["3d", "6h"],
    )
    feature_versions: dict[Name, str] = Field(
        default_factory=dict,
        description="table -> the feature version the consumer was trained on; a certified interval "
        "computed by another version fails the read instead of feeding the model",
        examples=[{"card_features": "1"}],
    )


class QueuesSpec(_Model):
    """Celery queues of the generated DAG: each region's tasks on its queue, reconcile and gate
    on the control queue (``airflow celery worker --queues ...`` serves them)."""

    default: str = Field(
        "default", min_length=1, description="queue of every region the regions map does not name",
        examples=["regional"],
    )
    regions: dict[Region, str] = Field(
        default_factory=dict, description="region -> queue (a region group's workers serve it)",
        examples=[{"eu-west": "eu", "eu-central": "eu", "us-east": "us"}],
    )
    control: str | None = Field(
        None, description="queue of reconcile and gate (the control plane's workers); default: `default`",
        examples=["control"],
    )


class AirflowSpec(_Model):
    """Defaults of the generated DAG, each overridable per pipeline."""

    retries: int = Field(2, ge=0)
    retry_delay: Duration = timedelta(minutes=2)
    execution_timeout: Duration = timedelta(hours=1)
    max_active_runs: int = Field(1, ge=1)
    max_active_tasks: int = Field(16, ge=1)
    pool: str | None = None
    catchup: bool = False
    tags: list[str] = Field(default_factory=lambda: ["lockstep"])
    task_granularity: Literal["step", "region"] = Field(
        "step",
        description="step: ingest, validate_inputs, transform, validate as four tasks per region; "
        "region: one task per region (less scheduling overhead on small intervals)",
    )
    queues: QueuesSpec | None = Field(
        None,
        description="Celery queues per region and for the control plane; unset: Airflow's default queue",
        examples=[{"default": "regional", "control": "control", "regions": {"eu-west": "eu"}}],
    )
    trigger: Literal["schedule", "landing"] = Field(
        "schedule",
        description="schedule: a run per interval on the cron schedule; landing: event-driven, a run per interval "
        "once its files have landed (every region's file of every file source) and it closed plus its late "
        "allowance, started by a `<pipeline>_landing` DAG on the asset `lockstep://<pipeline>/landing` (post a "
        "landing notification to it; duplicates are harmless: one run per interval and delivered content)",
        examples=["landing"],
    )
    landing_lookback: Duration = Field(
        timedelta(days=1),
        description="landing trigger: how far back from now a notification looks for landed intervals (an "
        "event's extra may also name intervals: {\"intervals\": [\"2026-01-01T05\"]})",
        examples=["6h", "2d"],
    )


class AlertTarget(_Model):
    """Where Lockstep's alerts go (sent through Airflow's notifier interface). Credentials live
    in the Airflow connection ``conn_id``, never in the spec: for ``smtp`` its host, port,
    login and password (extra ``{"starttls": true}`` for STARTTLS); for ``webhook`` its host
    (a URL, ``http(s)://...``) with optional login/password (basic auth) and extra
    ``{"headers": {...}}``."""

    kind: Literal["smtp", "webhook"]
    conn_id: str = Field(min_length=1, description="the Airflow connection holding the target's credentials")
    to: list[str] = Field(default_factory=list, description="smtp: recipients")
    sender: str = Field("lockstep@localhost", description="smtp: From address")
    on: tuple[Literal["blocked", "stale"], ...] = Field(
        ("blocked", "stale"),
        description="blocked: a generation blocks; stale: the generation in force is older than a "
        "consumer's max_staleness",
    )

    @model_validator(mode="after")
    def _recipients(self) -> AlertTarget:
        if self.kind == "smtp" and not self.to:
            raise ValueError("an smtp alert target needs recipients in `to`")
        return self


# --------------------------------------------------------------------------- maintenance
class MaintenanceSpec(_Model):
    """Storage maintenance (``lockstep maintain``, the ``lockstep_maintenance`` DAG): compaction,
    checkpoints, and a vacuum that keeps every version a decision inside the rollback window,
    the certification in force or an unexpired override refers to."""

    rollback_window: Duration = Field(
        timedelta(days=30),
        description="generations of intervals this close to the newest decided interval stay readable "
        "(read_certified, rollback, override); older versions' files may be removed",
    )
    min_file_age: Duration = Field(
        timedelta(hours=1),
        description="unreferenced files younger than this are kept (a concurrent writer may be about to "
        "commit them); rounded up to whole hours",
    )
    target_file_size: int | None = Field(None, ge=1 << 20, description="compaction target in bytes; default deltalake's")


# --------------------------------------------------------------------------- pipeline
class PipelineSpec(_Model):
    """One pipeline: becomes one Airflow DAG."""

    name: Name
    description: str = ""
    schedule: str = "@daily"
    granularity: str = Field(
        "day",
        pattern=GRANULARITY_PATTERN,
        description="the interval a run processes: 'day' (tables partitioned by ds), 'hour' (ds, hour) or "
        "minutes dividing an hour such as '15m' (ds, hour, minute); a sub-daily schedule must fire once per interval",
        examples=["hour", "15m"],
    )
    start_date: date
    regions: list[Region] = Field(min_length=1)
    storage: StorageSpec = StorageSpec()
    sources: dict[Name, Source] = Field(default_factory=dict)
    tables: list[TableSpec] = Field(min_length=1)
    features: list[FeatureSetSpec] = Field(default_factory=list)
    validation: ValidationSpec = ValidationSpec()
    reconcile: ReconcileSpec = ReconcileSpec()
    consumers: list[ConsumerSpec] = Field(default_factory=list)
    airflow: AirflowSpec = AirflowSpec()
    maintenance: MaintenanceSpec = MaintenanceSpec()
    alerts: list[AlertTarget] = Field(default_factory=list, description="who hears when a generation blocks or goes stale")

    _path: Path | None = PrivateAttr(None)

    @model_validator(mode="before")
    @classmethod
    def _default_partitions(cls, data: Any) -> Any:
        """Tables that do not say how they are partitioned get the granularity's columns."""
        if not isinstance(data, dict) or not isinstance(data.get("granularity"), str):
            return data
        if not re.fullmatch(GRANULARITY_PATTERN, data["granularity"]) or not isinstance(data.get("tables"), list):
            return data
        cols = partition_columns(data["granularity"])
        tables = [dict(t, partition_by=cols) if isinstance(t, dict) and "partition_by" not in t else t
                  for t in data["tables"]]
        return {**data, "tables": tables}

    @field_validator("regions")
    @classmethod
    def _unique_regions(cls, v: list[str]) -> list[str]:
        dupes = sorted({r for r in v if v.count(r) > 1})
        if dupes:
            raise ValueError(f"duplicate region(s) {dupes}")
        return v

    @field_validator("schedule")
    @classmethod
    def _valid_schedule(cls, v: str) -> str:
        """A five-field cron expression or a preset Airflow accepts (``None``/``@once``: manual)."""
        if v in SCHEDULE_PRESETS or v in ("None", "none", "@once"):
            return v
        from croniter import croniter

        if len(v.split()) != 5 or not croniter.is_valid(v):
            raise ValueError(
                "expected a five-field cron expression (minute hour day-of-month month day-of-week) "
                f"or one of {', '.join(SCHEDULE_PRESETS)}, @once, None"
            )
        return v

    @model_validator(mode="after")
    def _references(self) -> PipelineSpec:
        names = [t.name for t in self.tables]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"tables: duplicate table name(s) {dupes}")
        by_name = {t.name: t for t in self.tables}
        for i, t in enumerate(self.tables):
            if t.layer in ("raw", "reference"):
                if t.source is None:
                    raise ValueError(f"tables[{i}] ({t.name}): a {t.layer} table needs a source")
                if t.source not in self.sources:
                    raise ValueError(
                        f"tables[{i}].source: unknown source {t.source!r}; "
                        f"defined: {sorted(self.sources)}"
                    )
            elif t.source is not None:
                raise ValueError(f"tables[{i}].source: only raw and reference tables have a source")
            need = partition_columns(self.granularity)
            if t.partition_by[: len(need)] != need:
                raise ValueError(f"tables[{i}].partition_by: {self.granularity} intervals partition by "
                                 f"{', '.join(need)} (got {', '.join(t.partition_by) or 'nothing'})")
        self._check_schedule()
        if self.airflow.trigger == "landing" and not any(isinstance(s, FileSource) for s in self.sources.values()):
            raise ValueError("airflow.trigger: landing needs a file source (parquet, csv or jsonl) whose deliveries "
                             "it waits for")
        for i, f in enumerate(self.features):
            for name in f.inputs:
                if name not in by_name:
                    raise ValueError(f"features[{i}].inputs: unknown table {name!r}")
            out = by_name.get(f.output)
            if out is None or out.layer != "features":
                raise ValueError(f"features[{i}].output: {f.output!r} is not a features-layer table")
        checks: list[tuple[str, str]] = [(f"reconcile.parity[{i}]", c.table) for i, c in enumerate(self.reconcile.parity)]
        checks += [(f"reconcile.drift[{i}]", c.table) for i, c in enumerate(self.reconcile.drift)]
        if self.reconcile.freshness:
            checks.append(("reconcile.freshness", self.reconcile.freshness.table))
        for i, c in enumerate(self.consumers):
            checks += [(f"consumers[{i}].tables", t) for t in c.tables]
        for where, name in checks:
            if name not in by_name:
                raise ValueError(f"{where}.table: unknown table {name!r}")
        return self

    def _check_schedule(self) -> None:
        """A sub-daily pipeline's schedule fires once per interval (else intervals would overlap or gap)."""
        if self.granularity == "day" or self.schedule in ("None", "none", "@once"):
            return
        from croniter import croniter

        cron = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *"}.get(self.schedule, self.schedule)
        if cron.startswith("@"):
            raise ValueError(f"schedule {self.schedule!r} does not fire once per {self.granularity} interval")
        it = croniter(cron, datetime(self.start_date.year, self.start_date.month, self.start_date.day, tzinfo=UTC))
        fires = [it.get_next(datetime) for _ in range(26)]
        gaps = {b - a for a, b in zip(fires, fires[1:], strict=False)}
        if gaps != {self.interval_length}:
            shown = ", ".join(sorted(str(g) for g in gaps))
            raise ValueError(f"schedule {self.schedule!r} fires every {shown}, but granularity {self.granularity!r} "
                             f"intervals last {self.interval_length}")

    # -- helpers
    @property
    def interval_length(self) -> timedelta:
        """How long one interval lasts (a day, an hour, or the granularity's minutes)."""
        return granularity_length(self.granularity)

    @property
    def late_allowance(self) -> timedelta:
        """The largest ``late_allowance`` of the pipeline's sources: an interval is processed
        this long after it closes."""
        return max((s.late_allowance for s in self.sources.values()), default=timedelta(0))

    def interval_at(self, when: datetime | date | str) -> Interval:
        """The interval of this pipeline that contains ``when`` (a datetime, a date, or an
        interval key such as '2026-01-01T05' or '2026-01-01T05:15')."""
        return Interval.containing(when, self.granularity)

    @property
    def path(self) -> Path | None:
        """The file the spec was loaded from (None when built in code)."""
        return self._path

    def table(self, name: str) -> TableSpec:
        for t in self.tables:
            if t.name == name:
                return t
        raise SpecError(f"{self.name}: no table named {name!r}", field="tables")

    def tables_in(self, *layers: str) -> list[TableSpec]:
        return [t for t in self.tables if t.layer in layers]

    def feature_set_for(self, table: str) -> FeatureSetSpec | None:
        return next((f for f in self.features if f.output == table), None)

    def root(self, override: str | None = None) -> str:
        """Storage root: ``override`` (CLI --root), else $LOCKSTEP_ROOT, else the spec's.
        It may contain ``{region}``; :meth:`region_root` fills it in."""
        return override or os.environ.get("LOCKSTEP_ROOT") or self.resolve_path(
            self.storage.root, "storage.root", writable=True)

    def region_root(self, region: str, override: str | None = None) -> str:
        """The storage root of one region's tables (``{region}`` filled in)."""
        return self.root(override).replace("{region}", region)

    def control_root(self, override: str | None = None) -> str:
        """Where ``_lockstep`` lives: ``storage.control_root``, else the root (an override of
        the root moves both unless the spec sets a control root of its own)."""
        if self.storage.control_root is not None:
            return self.resolve_path(self.storage.control_root, "storage.control_root", writable=True)
        root = self.root(override)
        if "{region}" in root:
            raise SpecError(f"{self.name}: root {root!r} contains {{region}}; set storage.control_root",
                            field="storage.control_root")
        return root

    def table_uri(self, region: str, layer: str, table: str, root: str | None = None) -> str:
        """``<region root>/<pipeline>/<region>/<layer>/<table>``."""
        from pipelines.paths import table_uri

        return table_uri(self.region_root(region, root), self.name, region, layer, table)

    def lockstep_uri(self, name: str, root: str | None = None) -> str:
        """``<control root>/<pipeline>/_lockstep/<name>``."""
        from pipelines.paths import lockstep_uri

        return lockstep_uri(self.control_root(root), self.name, name)

    def region_options(self, region: str) -> dict[str, str]:
        return self.storage.region_options(region)

    def control_options(self) -> dict[str, str]:
        return self.storage.resolved_options()

    def suites_dir(self) -> Path:
        base = self._path.parent if self._path else Path.cwd()
        return (base / self.validation.suites_dir).resolve()

    def spec_hash(self) -> str:
        """Stable hash of the spec's content (not of its formatting)."""
        payload = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def with_path(self, path: Path | None) -> PipelineSpec:
        """Bind the spec to the file it came from: file-source paths, Delta-source URIs and the
        global control file get their ``${VAR}`` values and resolve against its folder, and
        feature sets import their transforms from it. Returns the bound spec."""
        base = path.parent if path is not None else None
        spec = self
        sources = {name: self._bound_source(name, src, base) for name, src in self.sources.items()}
        if sources != self.sources:
            spec = spec.model_copy(update={"sources": sources})
        ct = self.reconcile.control_totals
        if ct is not None and ct.global_control is not None:
            control = self.resolve_path(ct.global_control, "reconcile.control_totals.global_control", base=base)
            if control != ct.global_control:
                rec = self.reconcile.model_copy(
                    update={"control_totals": ct.model_copy(update={"global_control": control})})
                spec = spec.model_copy(update={"reconcile": rec})
        features = [fs.model_copy() for fs in spec.features]
        for fs in features:
            fs._base = base
        spec = spec.model_copy(update={"features": features})
        spec._path = path
        return spec

    def _bound_source(self, name: str, src: Any, base: Path | None) -> Any:
        if isinstance(src, FileSource):
            path = self.resolve_path(src.path, f"sources.{name}.path", base=base)
            return src if path == src.path else src.model_copy(update={"path": path})
        if isinstance(src, DeltaSource):
            uri = self.resolve_path(src.uri, f"sources.{name}.uri", base=base)
            return src if uri == src.uri else src.model_copy(update={"uri": uri})
        return src

    @property
    def is_shipped(self) -> bool:
        """True for a spec inside the installed package (a shipped pipeline or template)."""
        return self._path is not None and self._path.resolve().is_relative_to(TEMPLATES_DIR)

    def resolve_path(self, value: str, field: str, *, writable: bool = False,
                     base: Path | None = None) -> str:
        """``value`` with its ``${VAR}`` values, a relative local path joined to the spec's
        folder (``base`` overrides it). ``writable`` paths (the storage and control roots) of
        a shipped spec resolve against the working directory instead: the installed package
        is not a place for data. Example::

            spec.resolve_path(spec.storage.control_root, "storage.control_root", writable=True)
        """
        expanded = expand_env(value, field)
        if base is None and self._path is not None:
            base = Path.cwd() if writable and self.is_shipped else self._path.parent
        return resolve_relative(expanded, base)


# --------------------------------------------------------------------------- intervals
def granularity_length(granularity: str) -> timedelta:
    """How long an interval of ``granularity`` lasts: 'day', 'hour' or minutes such as '15m'.

    >>> granularity_length("15m")
    datetime.timedelta(seconds=900)
    """
    if granularity == "day":
        return timedelta(days=1)
    if granularity == "hour":
        return timedelta(hours=1)
    m = re.fullmatch(r"(\d+)m", granularity)
    if m is None or 60 % int(m.group(1)):
        raise SpecError(f"granularity {granularity!r}: expected day, hour or minutes dividing an hour (15m)")
    return timedelta(minutes=int(m.group(1)))


def partition_columns(granularity: str) -> list[str]:
    """The partition columns of a table at ``granularity``: ds, then hour, then minute."""
    if granularity == "day":
        return ["ds"]
    return ["ds", "hour"] if granularity == "hour" else ["ds", "hour", "minute"]


def partition_key(values: dict[str, str]) -> str:
    """A partition's sortable key, in the interval-key format ('2026-01-01', '2026-01-01T05',
    '2026-01-01T05:15'): zero-padded, so string order is time order."""
    key = values["ds"]
    if "hour" in values:
        key += f"T{values['hour']}"
        if "minute" in values:
            key += f":{values['minute']}"
    return key


class Interval(_Model):
    """The data interval a run processes: [start, end) in UTC. Any length a cron schedule
    makes: a day, an hour, or minutes (``Interval.for_date("2026-01-01", "15m", 5, 15)``)."""

    start: datetime
    end: datetime

    @classmethod
    def for_date(cls, ds: date | str, granularity: str = "day", hour: int = 0, minute: int = 0) -> Interval:
        """The interval of ``granularity`` that starts at ``ds`` ``hour``:``minute`` (UTC)."""
        d = parse_day(ds) if isinstance(ds, str) else ds
        length = granularity_length(granularity)
        try:
            start = datetime(d.year, d.month, d.day, tzinfo=UTC)
            if length < timedelta(days=1):
                start = start.replace(hour=hour, minute=minute if length < timedelta(hours=1) else 0)
            end = start + length
        except OverflowError:
            raise _unrepresentable(d) from None
        except ValueError as exc:  # an hour or minute out of range
            raise IntervalError(f"interval {d.isoformat()} {hour:02d}:{minute:02d}: {exc}") from None
        return cls(start=start, end=end)

    @classmethod
    def containing(cls, when: datetime | date | str, granularity: str = "day") -> Interval:
        """The interval of ``granularity`` that contains ``when``: a datetime (naive is UTC), a
        date, or an interval key ('2026-01-01', '2026-01-01T05', '2026-01-01T05:15').

        >>> Interval.containing("2026-01-01T05:20", "15m").key
        '2026-01-01T05:15'
        """
        if isinstance(when, str):
            try:
                when = datetime.fromisoformat(when) if "T" in when else date.fromisoformat(when)
            except ValueError:
                raise IntervalError(f"{when!r}: expected an interval key such as 2026-01-01, 2026-01-01T05 "
                                    "or 2026-01-01T05:15") from None
        length = granularity_length(granularity)
        try:
            if not isinstance(when, datetime):
                when = datetime(when.year, when.month, when.day, tzinfo=UTC)
            when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
            day = datetime(when.year, when.month, when.day, tzinfo=UTC)
            start = day + ((when - day) // length) * length if length < timedelta(days=1) else day
            end = start + length
        except OverflowError:
            raise _unrepresentable(when) from None
        return cls(start=start, end=end)

    @property
    def length(self) -> timedelta:
        return self.end - self.start

    @field_validator("start", "end")
    @classmethod
    def _utc(cls, v: datetime) -> datetime:
        v = v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)
        # a plain datetime in UTC, whatever came in (Airflow hands out pendulum DateTimes,
        # whose time zone polars does not recognise)
        return datetime(v.year, v.month, v.day, v.hour, v.minute, v.second, v.microsecond, tzinfo=UTC)

    @property
    def ds(self) -> str:
        return self.start.date().isoformat()

    @property
    def hour(self) -> int:
        return self.start.hour

    @property
    def minute(self) -> int:
        return self.start.minute

    @property
    def key(self) -> str:
        """A short id: '2026-01-01' for days, '2026-01-01T05' for hours, '2026-01-01T05:15'
        for intervals shorter than an hour."""
        if self.length >= timedelta(days=1):
            return self.ds
        if self.length >= timedelta(hours=1) and self.minute == 0:
            return f"{self.ds}T{self.hour:02d}"
        return f"{self.ds}T{self.hour:02d}:{self.minute:02d}"

    def partition(self, partition_by: list[str]) -> dict[str, str]:
        values = {"ds": self.ds, "hour": f"{self.hour:02d}", "minute": f"{self.minute:02d}"}
        return {col: values[col] for col in partition_by}

    def contains(self, when: datetime) -> bool:
        """Is ``when`` in [start, end)?"""
        return self.start <= when < self.end


#: the last instant an interval may end at: Python's datetime stops at the year 9999
LAST_INSTANT = datetime.max.replace(tzinfo=UTC)


def _unrepresentable(when: date | datetime) -> IntervalError:
    what = f"{when:%Y-%m-%dT%H:%M}" if isinstance(when, datetime) else when.isoformat()
    reason = f"no such interval: it would end after {LAST_INSTANT:%Y-%m-%d %H:%M} UTC, the last time Lockstep can represent"
    return IntervalError(f"interval {what}: {reason}", when=what, reason=reason)


def parse_day(value: str, what: str = "date") -> date:
    """A calendar day written YYYY-MM-DD, or one IntervalError naming ``what`` and the value.

    >>> parse_day("2026-01-01")
    datetime.date(2026, 1, 1)
    """
    try:
        return date.fromisoformat(value.strip())
    except ValueError as exc:
        reason = "" if "Invalid isoformat" in str(exc) else f" ({exc})"
        raise IntervalError(f"{what}: expected a date YYYY-MM-DD, got {value!r}{reason}", value=value) from None


def date_range(start: date, end: date) -> list[date]:
    """Every date from ``start`` to ``end``, both included."""
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


# --------------------------------------------------------------------------- loading
def _format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("synthetic", "parquet", "csv", "jsonl", "delta", "function-after"):
            continue  # discriminator tags are noise in a field path
        else:
            out += f".{part}" if out else str(part)
    return out  # empty for a check of the whole spec: its message names its own fields


def resolve_spec_path(name_or_path: str | Path) -> Path:
    """A shipped pipeline's name (``fraud_features``) or a path to a spec file."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        return p
    folders = [Path.cwd() / "dags", *shipped_pipeline_dirs()]
    for d in folders:
        for ext in (".yaml", ".yml"):
            if (d / f"{name_or_path}{ext}").exists():
                return d / f"{name_or_path}{ext}"
    shipped = ", ".join(sorted(shipped_pipelines())) or "none"
    raise SpecError(
        f"{name_or_path}: no such pipeline (looked for {name_or_path}.yaml in ./dags and in the "
        f"installed package, which ships: {shipped}) and no such file",
        file=str(name_or_path),
    )


def shipped_pipeline_dirs() -> list[Path]:
    """Folders of the installed package that hold shipped pipeline specs (one per template)."""
    if not TEMPLATES_DIR.is_dir():
        return []
    out = []
    for t in sorted(TEMPLATES_DIR.iterdir()):
        out += [d for d in (t, t / "dags") if d.is_dir()]
    return out


def shipped_pipelines() -> dict[str, Path]:
    """Every shipped pipeline by name: ``load_spec(name)`` loads it from the installed package."""
    found: dict[str, Path] = {}
    for d in shipped_pipeline_dirs():
        for f in sorted(d.glob("*.y*ml")):
            found.setdefault(f.stem, f)
    return found


def parse_spec(data: Any, source: str = "<spec>") -> PipelineSpec:
    """Validate a parsed mapping; errors name ``source``, the field path and what was expected."""
    if not isinstance(data, dict):
        raise SpecError(f"{source}: expected a mapping at the top level, got {type(data).__name__}", file=source)
    try:
        return PipelineSpec.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = _format_loc(tuple(err["loc"]))
            msg = err["msg"].removeprefix("Value error, ")
            got = err.get("input")
            shown = "" if isinstance(got, dict | list) or err["type"] == "missing" else f" (got {got!r})"
            lines.append(f"{loc}: {msg}{shown}" if loc else f"{msg}{shown}")
        raise SpecError(f"{source}: " + "; ".join(lines), file=source, errors=lines) from None


def load_spec(name_or_path: str | Path) -> PipelineSpec:
    """Load a pipeline spec from YAML, by shipped name or path.

    >>> spec = load_spec("fraud_features")
    >>> len(spec.regions)
    12
    """
    path = resolve_spec_path(name_or_path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SpecError(f"{path}: cannot read spec ({exc.strerror})", file=str(path)) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise SpecError(f"{path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at line {line}); "
                        "save the spec as UTF-8", file=str(path)) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError(f"{path}: YAML syntax error{where}: {problem}", file=str(path)) from None
    spec = parse_spec(data, str(path)).with_path(path.resolve())
    root = spec.storage.root
    if "://" not in root and ("#" in root or "?" in root):
        raise SpecError(f"{path}: storage.root: a local storage root may not contain '#' or '?' (got {root!r}); "
                        "Delta reads them as URL syntax", file=str(path), field="storage.root")
    return spec
