"""Sources: what a pipeline's raw and reference tables read, per region and interval.

Files delivered per region and interval (parquet, csv, json lines), existing Delta tables,
or the deterministic synthetic generator with the faults it can inject; ``Source`` is their
union, told apart by ``kind``.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Annotated, Literal

from pydantic import Field, field_validator

from pipelines.spec.base import Region, _Model
from pipelines.spec.interval import Duration
from pipelines.spec.resolve import _ENV_RE

FaultKind = Literal[
    "drift", "stale_reference", "missing_partition", "duplicates", "schema_change", "corrupt_file", "late_rows"
]



#: a source's late allowance, one definition for every kind of source
LateAllowance = Annotated[Duration, Field(
    description="how long after an interval closes its data may still arrive: the interval is processed "
    "when it closes plus the largest allowance of the pipeline's sources; rows arriving later re-version "
    "and re-certify that interval only",
    examples=["10m", "2h"],
)]

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
    late_allowance: LateAllowance = timedelta(0)


class FileSource(_Model):
    """Files delivered per region and interval: ``path`` may use {region}, {ds} and {hour}."""

    kind: Literal["parquet", "csv", "jsonl"]
    path: str
    required: bool = Field(True, description="a missing file is an error (else: an empty interval)")
    late_allowance: LateAllowance = timedelta(0)

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
    late_allowance: LateAllowance = timedelta(0)


Source = Annotated[SyntheticSource | FileSource | DeltaSource, Field(discriminator="kind")]
