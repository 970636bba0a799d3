"""What every cross-region check reads: the interval's tables at the generation's versions.

The gate certifies exactly the Delta versions the checks judged, so checks never read "the
newest version": they read each (region, table) at the version its generation names.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from pipelines.certify import Generation, capture_generation
from pipelines.spec import Interval, PipelineSpec, TableSpec
from pipelines.storage import open_table, read_table, table_uri


@dataclass
class Context:
    spec: PipelineSpec
    interval: Interval
    root: str
    generation: Generation
    run_id: str = ""
    storage_options: dict[str, str] = field(default_factory=dict)

    @classmethod
    def build(cls, spec: PipelineSpec, interval: Interval, *, root: str | None = None, run_id: str = "",
              generation: Generation | None = None) -> Context:
        gen = generation or capture_generation(spec, interval, root=root)
        return cls(spec, interval, spec.root(root), gen, run_id, spec.storage.resolved_options())

    def uri(self, region: str, layer: str, table: str) -> str:
        return table_uri(self.root, self.spec.name, region, layer, table)

    def version(self, region: str, table: TableSpec, layer: str | None = None) -> int | None:
        return self.generation.version(region, layer or table.layer, table.name)

    def scan(self, region: str, table: TableSpec, *, layer: str | None = None,
             interval: Interval | None = None, version: int | None = None) -> pl.LazyFrame | None:
        """The interval's partition of ``region``'s table at its generation version (None when
        the generation holds no such table). Quarantine tables are read at their newest version."""
        layer = layer or table.layer
        v = version if version is not None else self.version(region, table, layer)
        uri = self.uri(region, layer, table.name)
        if v is None:
            if layer != "quarantine":
                return None
            dt = open_table(uri, self.storage_options or None)
            if dt is None:
                return None
            v = dt.version()
        iv = interval or self.interval
        part = iv.partition(table.partition_by)
        return read_table(uri, version=v, partition=part, storage_options=self.storage_options)

    def schema(self, region: str, table: TableSpec, layer: str | None = None) -> pl.Schema | None:
        v = self.version(region, table, layer)
        if v is None:
            return None
        lf = read_table(self.uri(region, layer or table.layer, table.name), version=v,
                        storage_options=self.storage_options)
        return lf.collect_schema()
