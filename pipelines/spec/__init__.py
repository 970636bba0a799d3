"""Pipeline specs: the one place Lockstep's configuration is defined.

A spec is YAML that becomes a :class:`PipelineSpec`; everything else in Lockstep receives
these typed objects. Every model forbids unknown fields, so a typo is an error instead of a
silently ignored setting, and :func:`load_spec` turns any problem into one
:class:`~pipelines.errors.SpecError` naming the file, the field path and what was expected.

Example::

    spec = load_spec("dags/fraud_features.yaml")
    spec.regions            # ['eu-west', 'us-east', ...]
    spec.table("card_features").layer   # 'features'

The package, by concern (each module imports only those listed after it; a contract in
pyproject.toml keeps it so)::

    loading.py        YAML -> PipelineSpec, one SpecError per problem; shipped pipelines
    pipeline.py       PipelineSpec: the root, cross-part checks, roots, URIs, paths
    storage.py        StorageSpec: roots, control root, storage options per region
    sources.py        file, Delta and synthetic sources; injectable faults
    tables.py         TableSpec, FeatureSetSpec
    checks.py         validation and the cross-region reconciliation checks
    orchestration.py  the generated DAG's defaults and queues, consumers, alerts, maintenance
    release.py        the models: section (the model released on certified features, its registry)
    users.py          the FAB users file of an embedded Airflow (users -> governance role names)
    governance.py     the governance: section (roles -> regions and actions, approvals, local decisions)
    interval.py       Interval, granularities, partitions, Duration
    resolve.py        ${VAR} references, local and relative paths, the shipped templates
    base.py           the model base and the shared field types (Region, Name, Layer, ...)
    settings.py       Settings: the LOCKSTEP_* environment, read when asked

Every name below is importable from ``pipelines.spec`` itself; importing it costs pydantic
and PyYAML only (no polars, deltalake or Great Expectations). The settings are read with
``from pipelines.spec.settings import settings`` (the function is not re-exported here: it
would shadow its own module's name).
"""

from __future__ import annotations

from pipelines.spec.base import (
    NAME_PATTERN,
    REGION_PATTERN,
    CheckPolicy,
    Layer,
    Name,
    Policy,
    Region,
)
from pipelines.spec.checks import (
    ControlTotalsCheck,
    DriftCheck,
    DriftThreshold,
    FreshnessCheck,
    ParityCheck,
    ReconcileSpec,
    SchemaCheck,
    ValidationSpec,
)
from pipelines.spec.governance import ACTIONS, APPROVED_ACTIONS, Action, GovernanceSpec, RoleGrant
from pipelines.spec.interval import (
    GRANULARITY_PATTERN,
    LAST_INSTANT,
    Duration,
    Interval,
    date_range,
    granularity_length,
    parse_day,
    partition_columns,
    partition_key,
)
from pipelines.spec.loading import (
    load_spec,
    load_users_file,
    parse_spec,
    resolve_spec_path,
    shipped_pipeline_dirs,
    shipped_pipelines,
)
from pipelines.spec.orchestration import (
    AirflowSpec,
    AlertTarget,
    ConsumerSpec,
    MaintenanceSpec,
    QueuesSpec,
)
from pipelines.spec.pipeline import SCHEDULE_PRESETS, PipelineSpec
from pipelines.spec.release import ModelsSpec
from pipelines.spec.resolve import (
    DAGS_DIR,
    TEMPLATES_DIR,
    expand_env,
    is_local_path,
    resolve_relative,
)
from pipelines.spec.settings import Settings
from pipelines.spec.sources import (
    DeltaSource,
    FaultKind,
    FaultSpec,
    FileSource,
    Source,
    SyntheticSource,
)
from pipelines.spec.storage import RegionStorageSpec, StorageSpec
from pipelines.spec.tables import ColumnSpec, FeatureSetSpec, TableSpec
from pipelines.spec.users import FAB_ROLES, FabRole, FabUser, FabUsersFile

__all__ = [
    "ACTIONS",
    "APPROVED_ACTIONS",
    "DAGS_DIR",
    "FAB_ROLES",
    "GRANULARITY_PATTERN",
    "LAST_INSTANT",
    "NAME_PATTERN",
    "REGION_PATTERN",
    "SCHEDULE_PRESETS",
    "TEMPLATES_DIR",
    "Action",
    "AirflowSpec",
    "AlertTarget",
    "CheckPolicy",
    "ColumnSpec",
    "ConsumerSpec",
    "ControlTotalsCheck",
    "DeltaSource",
    "DriftCheck",
    "DriftThreshold",
    "Duration",
    "FabRole",
    "FabUser",
    "FabUsersFile",
    "FaultKind",
    "FaultSpec",
    "FeatureSetSpec",
    "FileSource",
    "FreshnessCheck",
    "GovernanceSpec",
    "Interval",
    "Layer",
    "MaintenanceSpec",
    "ModelsSpec",
    "Name",
    "ParityCheck",
    "PipelineSpec",
    "Policy",
    "QueuesSpec",
    "ReconcileSpec",
    "Region",
    "RegionStorageSpec",
    "RoleGrant",
    "SchemaCheck",
    "Settings",
    "Source",
    "StorageSpec",
    "SyntheticSource",
    "TableSpec",
    "ValidationSpec",
    "date_range",
    "expand_env",
    "granularity_length",
    "is_local_path",
    "load_spec",
    "load_users_file",
    "parse_day",
    "parse_spec",
    "partition_columns",
    "partition_key",
    "resolve_relative",
    "resolve_spec_path",
    "shipped_pipeline_dirs",
    "shipped_pipelines",
]
