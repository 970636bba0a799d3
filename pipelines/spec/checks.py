"""Checks: the validation of every region's tables (GX suites) and the reconciliation across
regions the gate runs (parity, control totals, drift, freshness, schema), each with its policy."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field

from pipelines.spec.base import CheckPolicy, Name, _Model
from pipelines.spec.interval import Duration


class ValidationSpec(_Model):
    """Great Expectations validation of every region's tables (the validation issue fills this)."""

    enabled: bool = True
    engine: Literal["auto", "gx", "polars"] = "auto"
    suites_dir: str = Field("../expectations", description="relative to the spec file")
    quarantine_cap: float = Field(0.01, ge=0, le=1, description="quarantined share that blocks")
    data_docs: bool = True


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
