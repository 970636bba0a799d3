"""Preflight of code and suites against the tables' columns: what each table's schema is known to
be (declared, synthetic, an input file's header, an existing table, a transform's output), every
feature transform runs on empty inputs, every suite loads and names only known columns."""

from __future__ import annotations

import polars as pl

from pipelines.errors import (
    FeatureError,
    LockstepError,
)
from pipelines.preflight.common import declared_schema, file_schema, first_line, spec_where
from pipelines.sources.files import file_path, stat_input
from pipelines.spec import FileSource, Interval, PipelineSpec, SyntheticSource, TableSpec


def _region_root(spec: PipelineSpec, region: str, root: str | None) -> str:
    return spec.root(root).replace("{region}", region)


def existing_schema(spec: PipelineSpec, t: TableSpec, region: str, root: str | None) -> pl.Schema | None:
    """The schema of the region's table as stored (None when it does not exist yet)."""
    from pipelines.storage import open_table, table_uri

    try:
        dt = open_table(table_uri(_region_root(spec, region, root), spec.name, region, t.layer, t.name),
                        spec.storage.resolved_options())
    except LockstepError:
        return None
    if dt is None:
        return None
    import pyarrow as pa

    arrow_schema = pa.schema(dt.schema().to_arrow())  # type: ignore[arg-type]
    frame = pl.from_arrow(arrow_schema.empty_table())
    assert isinstance(frame, pl.DataFrame)
    return frame.schema


def _synthetic_schema(spec: PipelineSpec, src: SyntheticSource) -> pl.Schema:
    from pipelines.sources import synthetic

    d = spec.start_date
    if src.dataset == "transactions":
        return synthetic.transactions(spec.regions[0], d, regions=spec.regions, rows=0, merchants=src.merchants,
                                      seed=src.seed).schema
    return synthetic.merchant_risk(d, merchants=10, seed=src.seed).head(0).schema


def known_schemas(
    spec: PipelineSpec, interval: Interval | None, regions: list[str], root: str | None,
) -> dict[str, pl.Schema]:
    """Input tables' columns, where they can be known without reading data."""
    out: dict[str, pl.Schema] = {}
    for t in spec.tables:
        if t.layer not in ("raw", "reference"):
            continue
        schema = declared_schema(t)
        src = spec.sources.get(t.source or "")
        if schema is None and isinstance(src, SyntheticSource):
            schema = _synthetic_schema(spec, src)
        if schema is None and isinstance(src, FileSource) and interval is not None and regions:
            path = file_path(src, regions[0], interval)
            if stat_input(path, required=src.required) is not None:
                from pipelines.sources import conform

                schema = conform(pl.DataFrame(schema=file_schema(src.kind, path)), t, str(path)).schema
        if schema is None and regions:
            schema = existing_schema(spec, t, regions[0], root)
        if schema is not None:
            out[t.name] = schema
    return out


# features
def check_features(spec: PipelineSpec, schemas: dict[str, pl.Schema]) -> None:
    from pipelines.features import FeatureContext, load_transform

    where = spec_where(spec)
    for i, fs in enumerate(spec.features):
        field = f"features[{i}].transform"
        try:
            fn = load_transform(fs)
        except FeatureError as exc:
            raise FeatureError(f"{where}: {field}: {exc}", file=where, field=field) from None
        except BaseException as exc:  # a module that fails to import raises anything
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            raise FeatureError(
                f"{where}: {field}: importing {fs.transform.partition(':')[0]!r} failed: "
                f"{type(exc).__name__}: {first_line(exc)}", file=where, field=field) from None
        if not all(name in schemas for name in fs.inputs):
            continue  # an input's columns are unknown until it lands: the run checks the rest
        inputs = {name: pl.LazyFrame(schema=schemas[name]) for name in fs.inputs}
        iv = Interval.for_date(spec.start_date, spec.granularity)
        ctx = FeatureContext(interval=iv, region=spec.regions[0], version=fs.version, params=fs.params)
        try:
            out = fn(inputs, ctx)
            if isinstance(out, pl.DataFrame):
                out = out.lazy()
            if not isinstance(out, pl.LazyFrame):
                raise TypeError(f"returned {type(out).__name__}, not a polars LazyFrame")
            schema = out.collect_schema()
        except Exception as exc:
            raise FeatureError(
                f"{where}: {field}: {fs.transform} fails on empty inputs of its tables' schemas: "
                f"{type(exc).__name__}: {first_line(exc)}", file=where, field=field) from None
        out_t = spec.table(fs.output)
        cols = dict(schema)
        for p in out_t.partition_by:
            cols.setdefault(p, pl.String())
        schemas[fs.output] = pl.Schema(cols)


# suites
def check_suites(spec: PipelineSpec, schemas: dict[str, pl.Schema]) -> None:
    """Every validated table's suite exists and loads (a missing one is never "nothing to
    check": the table could not be certified), and names only columns the table has."""
    from pipelines.errors import ValidationStepError
    from pipelines.validation.suites import check_columns, current_suite, validated_tables

    for t in validated_tables(spec):
        i = spec.tables.index(t)
        try:
            suite = current_suite(spec, t)
        except ValidationStepError as exc:
            if exc.context.get("missing"):  # the file is not there: say which table of the spec names it
                raise ValidationStepError(f"{spec_where(spec)}: tables[{i}] ({t.name}): {exc}", path=exc.context.get("path"),
                                          field=f"tables[{i}].suite") from None
            raise
        if t.name in schemas:
            check_columns(suite, list(schemas[t.name].names()))


