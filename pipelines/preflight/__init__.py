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
* classified columns are the table's, a feature table declares personal what it carries from a
  personal column of its inputs, and a non-local control root has its hash key
  (:mod:`pipelines.preflight.classification`);
* with an interval: every input file is present (a symlink loop is reported as such) and
  readable, has the declared columns, values that parse as the table's types (declared, else
  those of the stored table, else those of the first region's file), and a partition column
  (``ds``) that says the interval's day; the global control file exists. Input files are
  checked before the transforms run on their columns, and when a transform fails on a
  text file's columns, a column whose values are mostly of one type (numbers, times) is
  reported by its first value that is not (file, column, row) rather than as the transform's
  failure.

``lockstep check PIPELINE [--date D]`` runs it alone.

Example::

    preflight(load_spec("fraud_features"), Interval.for_date("2026-01-01"))
"""

from __future__ import annotations

from datetime import datetime

from pipelines.errors import FeatureError
from pipelines.preflight.classification import check_classification
from pipelines.preflight.clock import (
    duration_text,
    first_interval,
    latest_closed,
    require_closed,
    valid_range,
)
from pipelines.preflight.inputs import (
    check_control_file,
    check_input_file,
    check_mistyped_values,
    widened,
)
from pipelines.preflight.roots import UNSAFE_ROOT_CHARS, check_regions, check_root_path, check_roots
from pipelines.preflight.schemas import check_features, check_suites, existing_schema, known_schemas
from pipelines.spec import FileSource, Interval, PipelineSpec, TableSpec

__all__ = [
    "UNSAFE_ROOT_CHARS", "check_input_file", "check_regions", "check_root_path", "check_roots", "duration_text",
    "first_interval", "latest_closed", "preflight", "require_closed", "valid_range",
]


def preflight(
    spec: PipelineSpec, interval: Interval | None = None, regions: list[str] | None = None,
    *, root: str | None = None, allow_open: bool = False, now: datetime | None = None,
) -> None:
    """Check everything a run of ``spec`` needs before it writes; raise one clear error.
    ``allow_open``: an interval that has not closed yet may run (tests and demos)."""
    if interval is not None:
        require_closed(spec, interval, now=now, allow_open=allow_open)
    run_regions = check_regions(spec, regions)
    check_roots(spec, root, run_regions)
    schemas = known_schemas(spec, interval, run_regions, root)
    files: list[tuple[FileSource, TableSpec, str]] = []
    if interval is not None:
        # the input files first: a wrong value is its file, column and row, never a transform
        # failing on the columns a bad file made text
        for region in run_regions:
            for t in spec.tables_in("raw", "reference"):
                src = spec.sources.get(t.source or "")
                if isinstance(src, FileSource):
                    files.append((src, t, region))
                    target = existing_schema(spec, t, region, root) or widened(schemas.get(t.name))
                    check_input_file(src, t, region, interval, target=target)
    try:
        check_features(spec, schemas)
    except FeatureError:
        # no declared or stored types to hold the files to: a column that is mostly numbers
        # (or times) with a few values that are not is the delivery's fault, not the transform's
        if interval is not None:
            for src, t, region in files:
                check_mistyped_values(src, t, region, interval)
        raise
    check_classification(spec, schemas, root)
    check_suites(spec, schemas)
    if interval is not None:
        check_control_file(spec, interval, root)
