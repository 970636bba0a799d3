"""Preflight: everything that can be checked before anything is written.

A run calls :func:`preflight` first; it raises one :class:`~pipelines.errors.LockstepError`
naming the file and the field (or column) at fault, and writes nothing (a writable-root
probe is created and removed). It checks:

* with an interval: the interval exists for the pipeline (not before its ``start_date``) and
  has closed plus the sources' late allowance by the wall clock (:func:`require_closed`;
  ``allow_open`` lets a test or demo run one that has not);
* the regions asked for are the spec's;
* every storage root is usable (a local root: no ``#`` or ``?`` in the path, writable);
* every feature transform imports, is callable, and runs on empty inputs of its input
  tables' schemas (so a transform that raises or returns no frame fails here);
* every expectation suite loads (valid JSON, known expectation types, policies that fit)
  and names only columns the table has, where the table's columns are known (declared
  columns, a synthetic source, an input file's header, an existing table, or the schema a
  transform returns);
* with an interval: every input file is present (a symlink loop is reported as such) and
  readable, has the declared columns, values that parse as the table's types, and a
  partition column (``ds``) that says the interval's day; the global control file exists.

``lockstep check PIPELINE [--date D]`` runs it alone.

Example::

    preflight(load_spec("fraud_features"), Interval.for_date("2026-01-01"))
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from pipelines.errors import (
    FeatureError,
    IntervalError,
    LockstepError,
    SourceError,
    SpecError,
    StorageError,
)
from pipelines.sources.files import TEXT_CHECKED, bad_value, file_path, stat_input
from pipelines.spec import FileSource, Interval, PipelineSpec, SyntheticSource, TableSpec
from pipelines.spec.settings import settings

#: characters a local root may not hold: Delta's object store reads them as URL syntax
UNSAFE_ROOT_CHARS = ("#", "?")


def preflight(
    spec: PipelineSpec, interval: Interval | None = None, regions: list[str] | None = None,
    *, root: str | None = None, allow_open: bool = False, now: datetime | None = None,
) -> None:
    """Check everything a run of ``spec`` needs before it writes; raise one clear error.
    ``allow_open``: an interval that has not closed yet may run (tests and demos)."""
    if interval is not None:
        require_closed(spec, interval, now=now, allow_open=allow_open)
    run_regions = check_regions(spec, regions)
    check_roots(spec, root)
    schemas = _known_schemas(spec, interval, run_regions, root)
    _check_features(spec, schemas)
    _check_suites(spec, schemas)
    if interval is not None:
        for region in run_regions:
            for t in spec.tables_in("raw", "reference"):
                src = spec.sources.get(t.source or "")
                if isinstance(src, FileSource):
                    check_input_file(src, t, region, interval, target=_existing_schema(spec, t, region, root))
        _check_control_file(spec, interval, root)


def _where(spec: PipelineSpec) -> str:
    return str(spec.path) if spec.path is not None else spec.name


# --------------------------------------------------------------------------- time
def _now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def duration_text(td: timedelta) -> str:
    """A duration as a spec writes it: '10m', '2h', '1d', '90s'.

    >>> duration_text(timedelta(minutes=10))
    '10m'
    """
    secs = td.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= size and secs % size == 0:
            return f"{int(secs // size)}{unit}"
    return f"{secs:g}s"


def first_interval(spec: PipelineSpec) -> Interval:
    """The pipeline's first interval: the one starting at its ``start_date``."""
    return Interval.for_date(spec.start_date, spec.granularity)


def latest_closed(spec: PipelineSpec, now: datetime | None = None) -> Interval | None:
    """The newest interval that closed plus the late allowance by ``now`` (default: the wall
    clock); None when none has since the ``start_date``."""
    at = _now(now) - spec.late_allowance - spec.interval_length
    try:
        iv = spec.interval_at(at)
    except SpecError:  # before the year 1
        return None
    return iv if iv.start >= first_interval(spec).start else None


def valid_range(spec: PipelineSpec, now: datetime | None = None) -> str:
    """Which intervals a run of ``spec`` may process now, in words."""
    first, latest = first_interval(spec), latest_closed(spec, now)
    allowance = f" plus the late allowance of {duration_text(spec.late_allowance)}" if spec.late_allowance else ""
    if latest is None:
        return (f"{spec.name}'s intervals start at {first.key} (its start_date), and none has closed{allowance} "
                "yet")
    return f"{spec.name}'s intervals run from {first.key} (its start_date) to {latest.key} (the newest closed{allowance})"


def require_closed(
    spec: PipelineSpec, interval: Interval, *, now: datetime | None = None, allow_open: bool = False,
) -> None:
    """Refuse an interval the pipeline cannot process now, with one line naming it and the
    valid range: one before the spec's ``start_date`` (always), or one that has not closed
    plus the sources' late allowance by ``now`` (default: the wall clock,
    ``datetime.now(UTC)``) unless ``allow_open`` (tests and demos). The one place runs,
    steps and certifications ask: :func:`preflight` (every step), ``runner.certify``,
    backfills.

    >>> require_closed(spec, Interval.for_date("2099-01-01"))   # doctest: +SKIP
    IntervalError: p: interval 2099-01-01 has not closed yet (it closes at 2099-01-02 00:00 UTC, ...
    """
    first = first_interval(spec)
    if interval.start < first.start:
        raise IntervalError(
            f"{spec.name}: interval {interval.key} is before the pipeline's start_date {spec.start_date}; "
            f"{valid_range(spec, now)}", interval=interval.key, retryable=False)
    if allow_open:
        return
    at = _now(now)
    try:
        ready = interval.end + spec.late_allowance
    except OverflowError:
        raise IntervalError(f"{spec.name}: interval {interval.key}: no such interval: it would close after the last "
                            "time Lockstep can represent", interval=interval.key, retryable=False) from None
    if at >= ready:
        return
    allowance = (f", plus the late allowance of {duration_text(spec.late_allowance)}: {ready:%Y-%m-%d %H:%M} UTC"
                 if spec.late_allowance else "")
    raise IntervalError(
        f"{spec.name}: interval {interval.key} has not closed yet (it closes at {interval.end:%Y-%m-%d %H:%M} UTC"
        f"{allowance}; now {at:%Y-%m-%d %H:%M} UTC); runs and certifications wait for it. Pass --allow-open "
        "for a test or demo", interval=interval.key, closes_at=ready.isoformat(), retryable=True)


# --------------------------------------------------------------------------- regions, roots
def check_regions(spec: PipelineSpec, regions: list[str] | None) -> list[str]:
    """The regions to run: ``regions`` when every one is the spec's, else a SpecError."""
    if regions is None:
        return list(spec.regions)
    unknown = [r for r in regions if r not in spec.regions]
    if unknown:
        raise SpecError(
            f"{_where(spec)}: regions: unknown region(s) {', '.join(repr(r) for r in unknown)}; "
            f"the spec's regions: {', '.join(spec.regions)}", file=_where(spec), field="regions")
    return list(regions)


def check_root_path(root: str, field: str = "storage.root", where: str = "") -> None:
    """A local root must not contain URL syntax (``#``, ``?``): Delta would write its files
    under one path and read them back from another."""
    if "://" in root:
        return
    bad = [c for c in UNSAFE_ROOT_CHARS if c in root]
    if bad:
        raise SpecError(
            f"{where + ': ' if where else ''}{field}: a local storage root may not contain "
            f"{' or '.join(repr(c) for c in bad)} (got {root!r}); choose another folder",
            file=where, field=field)


def _probe(root: str, where: str, field: str) -> None:
    path = Path(root).expanduser()
    existing = path
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise StorageError(f"{where}: {field}: {existing} is a file, not a folder", retryable=False)
    probe = existing / f".lockstep-probe-{uuid.uuid4().hex[:8]}"
    try:
        probe.mkdir()
        probe.rmdir()
    except OSError as exc:
        raise StorageError(f"{where}: {field}: storage root {path} is not writable ({exc.strerror})",
                           retryable=False) from None


def check_roots(spec: PipelineSpec, root: str | None = None) -> None:
    """Every root the run writes to is safe and (when local) writable."""
    where = _where(spec)
    base = spec.root(root)
    field = "--root" if root else ("LOCKSTEP_ROOT" if settings().root else "storage.root")
    roots = {base.replace("{region}", r) for r in spec.regions} if "{region}" in base else {base}
    control = getattr(spec.storage, "control_root", None)
    if isinstance(control, str):
        roots.add(control)
    for r in sorted(roots):
        check_root_path(r, field, where)
        if "://" not in r:
            _probe(r, where, field)


# --------------------------------------------------------------------------- schemas
def _region_root(spec: PipelineSpec, region: str, root: str | None) -> str:
    return spec.root(root).replace("{region}", region)


def _existing_schema(spec: PipelineSpec, t: TableSpec, region: str, root: str | None) -> pl.Schema | None:
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


def _declared(t: TableSpec) -> pl.Schema | None:
    if not t.columns:
        return None
    cols: dict[str, Any] = {}
    for c in t.columns:
        dtype = getattr(pl, c.dtype, None)
        if dtype is None:
            raise SpecError(f"tables[{t.name}].columns: unknown polars dtype {c.dtype!r} of column {c.name!r}",
                            field="columns")
        cols[c.name] = dtype
    for p in t.partition_by:
        cols.setdefault(p, pl.String)
    return pl.Schema(cols)


def _synthetic_schema(spec: PipelineSpec, src: SyntheticSource) -> pl.Schema:
    from pipelines.sources import synthetic

    d = spec.start_date
    if src.dataset == "transactions":
        return synthetic.transactions(spec.regions[0], d, regions=spec.regions, rows=0, merchants=src.merchants,
                                      seed=src.seed).schema
    return synthetic.merchant_risk(d, merchants=10, seed=src.seed).head(0).schema


def _known_schemas(
    spec: PipelineSpec, interval: Interval | None, regions: list[str], root: str | None,
) -> dict[str, pl.Schema]:
    """Input tables' columns, where they can be known without reading data."""
    out: dict[str, pl.Schema] = {}
    for t in spec.tables:
        if t.layer not in ("raw", "reference"):
            continue
        schema = _declared(t)
        src = spec.sources.get(t.source or "")
        if schema is None and isinstance(src, SyntheticSource):
            schema = _synthetic_schema(spec, src)
        if schema is None and isinstance(src, FileSource) and interval is not None and regions:
            path = file_path(src, regions[0], interval)
            if stat_input(path, required=src.required) is not None:
                from pipelines.sources import conform

                schema = conform(pl.DataFrame(schema=_file_schema(src.kind, path)), t, str(path)).schema
        if schema is None and regions:
            schema = _existing_schema(spec, t, regions[0], root)
        if schema is not None:
            out[t.name] = schema
    return out


# --------------------------------------------------------------------------- features
def _check_features(spec: PipelineSpec, schemas: dict[str, pl.Schema]) -> None:
    from pipelines.features import FeatureContext, load_transform

    where = _where(spec)
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
                f"{type(exc).__name__}: {_first_line(exc)}", file=where, field=field) from None
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
                f"{type(exc).__name__}: {_first_line(exc)}", file=where, field=field) from None
        out_t = spec.table(fs.output)
        cols = dict(schema)
        for p in out_t.partition_by:
            cols.setdefault(p, pl.String())
        schemas[fs.output] = pl.Schema(cols)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= 300 else line[:300] + "…"


# --------------------------------------------------------------------------- suites
def _check_suites(spec: PipelineSpec, schemas: dict[str, pl.Schema]) -> None:
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
                raise ValidationStepError(f"{_where(spec)}: tables[{i}] ({t.name}): {exc}", path=exc.context.get("path"),
                                          field=f"tables[{i}].suite") from None
            raise
        if t.name in schemas:
            check_columns(suite, list(schemas[t.name].names()))


# --------------------------------------------------------------------------- input files
def _file_schema(kind: str, path: Path) -> pl.Schema:
    try:
        if kind == "parquet":
            return pl.Schema(pl.read_parquet_schema(path))
        if kind == "csv":
            return pl.scan_csv(path, try_parse_dates=True).collect_schema()
        return pl.scan_ndjson(path).collect_schema()
    except Exception as exc:
        raise SourceError(f"{path}: cannot read {kind} file ({type(exc).__name__}: {_first_line(exc)}); "
                          "the file was left in place", path=str(path)) from None


def check_input_file(
    src: FileSource, t: TableSpec, region: str, interval: Interval, *, target: pl.Schema | None = None,
) -> None:
    """One region's input file for one interval: present, readable, declared columns, values
    of the table's types, and the interval's partition values."""
    path = file_path(src, region, interval)
    if stat_input(path, required=src.required) is None:
        return
    have = _file_schema(src.kind, path)
    declared = _declared(t)
    expected = declared if declared is not None else target
    if declared is not None:
        missing = [c for c in declared.names() if c not in have and c not in t.partition_by]
        if missing:
            raise SourceError(f"{path}: column(s) {', '.join(repr(c) for c in missing)} missing "
                              f"(declared by {t.path}); the file has {', '.join(have.names())}", path=str(path))
    elif target is not None:
        missing = [c for c in target.names() if c not in have and c not in t.partition_by]
        if missing:
            raise SourceError(f"{path}: column(s) {', '.join(repr(c) for c in missing)} missing "
                              f"({t.path} holds them); the file has {', '.join(have.names())}", path=str(path))
    parts = {p: v for p, v in interval.partition(t.partition_by).items() if p in have}
    typed = {c: dt for c, dt in (expected or {}).items()
             if c in have and c not in parts and dt in TEXT_CHECKED and have[c] != dt
             and (have[c] == pl.String or dt not in (pl.Date, pl.Datetime))}  # temporal: text inputs
    if not parts and not typed:
        return
    try:
        lf = _scan(src.kind, path, {c: pl.String for c in [*parts, *typed]})
        frame = lf.select([*parts, *typed]).collect()
    except Exception as exc:
        raise SourceError(f"{path}: cannot read {src.kind} file ({type(exc).__name__}: {_first_line(exc)})",
                          path=str(path)) from None
    for col, want in parts.items():
        values = frame[col].cast(pl.String)
        wrong = values.filter(values.is_null() | (values != want))
        if wrong.len():
            shown = sorted({str(v) for v in wrong.unique().head(3).to_list()})
            raise SourceError(f"{path}: column {col!r} says {', '.join(shown)} in {wrong.len()} of "
                              f"{frame.height} rows, but the interval is {col}={want}", path=str(path))
    for col, dtype in typed.items():
        bad_value(frame[col], dtype, path)


def _scan(kind: str, path: Path, as_string: dict[str, Any]) -> pl.LazyFrame:
    if kind == "csv":
        return pl.scan_csv(path, schema_overrides=as_string, infer_schema=True)
    if kind == "parquet":
        return pl.scan_parquet(path)
    return pl.scan_ndjson(path)


# --------------------------------------------------------------------------- control files
def _check_control_file(spec: PipelineSpec, interval: Interval, root: str | None) -> None:
    ct = spec.reconcile.control_totals
    if ct is None or not ct.global_control:
        return
    from pipelines.storage import join_uri

    base = spec.root(root)
    path = Path(ct.global_control.format(ds=interval.ds, hour=f"{interval.hour:02d}",
                                         root=join_uri(base) if "://" not in base else base)).expanduser()
    if "://" in str(ct.global_control):
        return
    try:
        stat_input(path, required=True)
    except SourceError as exc:
        raise SourceError(f"{_where(spec)}: reconcile.control_totals.global_control: {exc}", path=str(path)) from None
