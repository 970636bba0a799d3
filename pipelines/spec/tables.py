"""Tables and feature sets: what a pipeline stores per region and how its features are computed."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PrivateAttr, model_validator

from pipelines.spec.base import CheckPolicy, Layer, Name, _Model
from pipelines.spec.interval import Duration


class ColumnSpec(_Model):
    name: str
    dtype: str = Field(description="polars dtype name, e.g. Int64, Float64, String, Datetime")
    nullable: bool = True


#: what a column's values are: ``personal`` (a value tied to a person: shown outside the region
#: only as a keyed hash), ``identifier`` (the value identifies a row or a subject)
ColumnClass = Literal["personal", "identifier"]


class TableSpec(_Model):
    """A table of the pipeline, stored per region at <root>/<pipeline>/<region>/<layer>/<name>."""

    name: Name
    layer: Layer
    source: str | None = Field(None, description="name of a source (raw and reference tables)")
    keys: list[str] = Field(default_factory=list, description="unique per interval")
    event_time: str | None = None
    event_time_tolerance: Duration = Field(
        timedelta(minutes=5),
        description="a row belongs to the interval it was delivered in (its partition); its event time may lie "
        "this far outside that interval (clock skew, a row late from the interval before) and it is featured "
        "there, windows computed on its event time; a row further out (or beyond the sources' late allowance, "
        "when that is larger) is quarantined with the reason 'event time outside the delivery interval'",
        examples=["30s", "1h"])
    partition_by: list[str] = Field(default_factory=lambda: ["ds"])
    suite: str | None = Field(None, description="expectation suite; default: the table name")
    validated: bool = Field(
        True, description="false: the table has no expectation suite and the gate asks no validation evidence "
        "of it; true (default): its suite must exist and load, or the table cannot be certified",
        examples=[False])
    replicated: bool = Field(False, description="every region must hold it identically")
    columns: list[ColumnSpec] = Field(default_factory=list, description="optional declared schema")
    classification: dict[str, list[ColumnClass]] = Field(
        default_factory=dict,
        description="per column, what its values are: 'personal' values appear in Lockstep's own outputs "
        "(check results, evidence, Data Docs, explain, alerts, lineage, logs) only as keyed hashes; "
        "'identifier' marks a column that identifies a subject or row",
        examples=[{"card_id": ["personal", "identifier"], "txn_id": ["personal", "identifier"]}])

    @model_validator(mode="after")
    def _classified_columns(self) -> TableSpec:
        """A classified column is one the table has, where its columns are declared."""
        for col, classes in self.classification.items():
            if not classes:
                raise ValueError(f"tables ({self.name}): classification.{col}: name at least one of personal, identifier")
        declared = {c.name for c in self.columns} | set(self.keys) | set(self.partition_by)
        if self.event_time:
            declared.add(self.event_time)
        unknown = sorted(set(self.classification) - declared) if self.columns else []
        if unknown:
            raise ValueError(f"tables ({self.name}): classification names column(s) {unknown} the table does not "
                             f"declare; its columns: {sorted(declared)}")
        return self

    @property
    def personal(self) -> frozenset[str]:
        """The columns whose values are personal."""
        return frozenset(c for c, classes in self.classification.items() if "personal" in classes)

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
