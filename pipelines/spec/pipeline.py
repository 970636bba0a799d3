"""The spec's root: :class:`PipelineSpec`, one pipeline that becomes one Airflow DAG.

It holds the parts (storage, sources, tables, checks, orchestration), validates what only
the whole can (references between parts, partitioning by granularity, a schedule that
fires once per interval) and answers where things are: roots, table URIs, suites, paths
relative to the spec file.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import Field, PrivateAttr, field_validator, model_validator

from pipelines.errors import SpecError
from pipelines.spec.base import Name, Region, _Model
from pipelines.spec.checks import ReconcileSpec, ValidationSpec
from pipelines.spec.governance import GovernanceSpec
from pipelines.spec.interval import (
    GRANULARITY_PATTERN,
    Interval,
    granularity_length,
    partition_columns,
)
from pipelines.spec.orchestration import AirflowSpec, AlertTarget, ConsumerSpec, MaintenanceSpec
from pipelines.spec.release import ModelsSpec
from pipelines.spec.resolve import TEMPLATES_DIR, expand_env, resolve_relative
from pipelines.spec.settings import settings
from pipelines.spec.sources import DeltaSource, FileSource, Source
from pipelines.spec.storage import StorageSpec
from pipelines.spec.tables import FeatureSetSpec, TableSpec

#: cron presets a schedule may name (Airflow's, without the ones that need no cron)
SCHEDULE_PRESETS = ("@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@quarterly", "@yearly", "@annually")


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
    models: ModelsSpec | None = Field(None, description="the model trained on certified features and released in every region",
                                     examples=[{"name": "fraud_model", "window": 7}])
    governance: GovernanceSpec | None = Field(
        None, description="region-scoped authority, approvals and where decisions may be made (absent: ungoverned)",
        examples=[{"allow_local": False, "approvals": 2,
                   "roles": {"eu-west-operator": {"regions": ["eu-west"], "actions": ["read", "approve"]}}}])

    _path: Path | None = PrivateAttr(None)
    #: how the user named the pipeline when it was loaded (a name, or a path to its file)
    _ref: str | None = PrivateAttr(None)

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
        self._check_governance()
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

    def _check_governance(self) -> None:
        """A role grants regions of this pipeline only."""
        for role, grant in (self.governance.roles if self.governance else {}).items():
            unknown = [] if grant.regions == "*" else sorted(set(grant.regions) - set(self.regions))
            if unknown:
                raise ValueError(f"governance.roles.{role}.regions: unknown region(s) {unknown}; "
                                 f"the pipeline's: {self.regions}")

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

    def event_time_tolerance(self, table: TableSpec) -> timedelta:
        """How far outside its delivery interval a row's event time may lie and the row still be
        that interval's: the table's ``event_time_tolerance`` or the late allowance, the larger."""
        return max(table.event_time_tolerance, self.late_allowance)

    def interval_at(self, when: datetime | date | str) -> Interval:
        """The interval of this pipeline that contains ``when`` (a datetime, a date, or an
        interval key such as '2026-01-01T05' or '2026-01-01T05:15')."""
        return Interval.containing(when, self.granularity)

    @property
    def path(self) -> Path | None:
        """The file the spec was loaded from (None when built in code)."""
        return self._path

    @property
    def command_ref(self) -> str:
        """The pipeline as a suggested command names it: the way the user named it when it was
        loaded (``lockstep run path/to/spec.yaml`` suggests ``lockstep explain path/to/spec.yaml``,
        which works where the name would not), shell-quoted; the name for a spec built in code."""
        return shlex.quote(self._ref) if self._ref else self.name

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
        """Storage root: ``override`` (CLI --root), else $LOCKSTEP_ROOT (``settings().root``),
        else the spec's. It may contain ``{region}``; :meth:`region_root` fills it in."""
        return override or settings().root or self.resolve_path(
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

    def region_lockstep_uri(self, region: str, name: str, root: str | None = None) -> str:
        """``<control root>/<pipeline>/_lockstep/regions/<region>/<name>``: what ``region``
        publishes to the control plane, under the one prefix its key may write."""
        from pipelines.paths import region_lockstep_uri

        return region_lockstep_uri(self.control_root(root), self.name, region, name)

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
