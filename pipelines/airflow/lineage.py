"""OpenLineage for Lockstep tasks, through apache-airflow-providers-openlineage.

Every Lockstep task is an ``@task`` of :mod:`pipelines.airflow.dag`; the provider asks an
*extractor* what such a task read and wrote. :class:`LockstepExtractor` answers per step:

=================  ===================================================  ====================
step               inputs                                               outputs
=================  ===================================================  ====================
ingest             the region's file or Delta sources of the interval   raw + reference tables
validate_inputs    raw + reference tables, every check as assertions    -
transform          the tables the feature sets read                     features tables
validate           features tables, every check as assertions           -
reconcile          every region's tables of the generation, every       ``_lockstep/check_results``
                   cross-region check as assertions
gate               every region's tables of the generation judged       ``_lockstep/certifications``
=================  ===================================================  ====================

Each table is a Delta dataset *per region* (``<root>/<pipeline>/<region>/<layer>/<table>``,
named by OpenLineage's naming rules: namespace ``file`` and the absolute path for a local
root, ``s3://bucket`` and the key for S3 …) with a ``storage`` facet (delta, parquet), a
``symlinks`` identifier ``<region>.<layer>.<table>`` in namespace ``lockstep://<pipeline>``,
and, once the task completed, the Delta ``version`` it read or wrote, its ``schema`` and row
count from the evidence store. Every check result the run recorded about a table becomes
one assertion of the table's ``dataQualityAssertions`` input facet (``name`` the check id,
``assertion`` its type, ``severity`` ``error`` for a blocking policy, expected/actual, the
policy and stage in ``params``).

Enable it in Airflow's configuration (``lockstep airflow up`` sets the last two, see
:data:`AIRFLOW_ENV`)::

    AIRFLOW__OPENLINEAGE__TRANSPORT='{"type": "http", "url": "http://marquez:5000"}'
    AIRFLOW__OPENLINEAGE__EXTRACTORS=pipelines.airflow.lineage.LockstepExtractor
    AIRFLOW__OPENLINEAGE__EXECUTE_IN_THREAD=True

``execute_in_thread`` is required: by default the provider emits from a forked copy of the
task process, where deltalake's runtime cannot run (it panics), so versions and checks could
not be read. In a forked emitter the extractor does not try: the completed event carries the
datasets known up front and an ``extractionError`` run facet saying so.

A failure to work out the lineage never fails the task; it is reported on the event as an
``extractionError`` run facet naming the error (never silently an event without datasets).
Other ``@task`` tasks keep the provider's own Python extractor (their source code).
"""

from __future__ import annotations

import inspect
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from airflow.providers.openlineage.extractors.base import OperatorLineage
from airflow.providers.openlineage.extractors.python import PythonExtractor
from openlineage.client.event_v2 import Dataset, InputDataset, OutputDataset
from openlineage.client.facet_v2 import (
    data_quality_assertions_dataset,
    dataset_version_dataset,
    extraction_error_run,
    output_statistics_output_dataset,
    schema_dataset,
    storage_dataset,
    symlinks_dataset,
)

from pipelines.airflow.datasets import dataset_name
from pipelines.runner.payload import REGION_STEPS
from pipelines.spec import Interval, PipelineSpec, load_spec
from pipelines.spec.settings import settings

#: the value of ``[openlineage] extractors`` that enables Lockstep's lineage
EXTRACTOR_PATH = "pipelines.airflow.lineage.LockstepExtractor"
#: Airflow configuration enabling Lockstep's lineage (a transport is the operator's choice)
AIRFLOW_ENV = {
    "AIRFLOW__OPENLINEAGE__EXTRACTORS": EXTRACTOR_PATH,
    "AIRFLOW__OPENLINEAGE__EXECUTE_IN_THREAD": "True",
}
#: the process that loaded the extractor (the task process); a different pid is a forked emitter
_LOADED_IN = os.getpid()
#: the module whose ``@task`` functions are Lockstep steps
DAG_MODULE = "pipelines.airflow.dag"


@dataclass
class TableLineage:
    """What one step did to one (region, layer, table) - the source of one dataset."""

    region: str
    layer: str
    table: str
    uri: str
    version: int | None = None
    rows: int | None = None
    schema: list[list[Any]] = field(default_factory=list)
    checks: list[Any] = field(default_factory=list)  # CheckResult

    def facets(self, pipeline: str) -> dict[str, Any]:
        facets: dict[str, Any] = {
            "storage": storage_dataset.StorageDatasetFacet(storageLayer="delta", fileFormat="parquet"),
            "symlinks": symlinks_dataset.SymlinksDatasetFacet(identifiers=[symlinks_dataset.Identifier(
                namespace=f"lockstep://{pipeline}", name=f"{self.region}.{self.layer}.{self.table}", type="TABLE")]),
        }
        if self.version is not None:
            facets["version"] = dataset_version_dataset.DatasetVersionDatasetFacet(datasetVersion=str(self.version))
        if self.schema:
            facets["schema"] = schema_dataset.SchemaDatasetFacet(fields=[
                schema_dataset.SchemaDatasetFacetFields(name=str(c[0]), type=str(c[1]) if len(c) > 1 else None)
                for c in self.schema])
        return facets

    def as_input(self, pipeline: str) -> InputDataset:
        namespace, name = dataset_name(self.uri)
        input_facets: dict[str, Any] = {}
        if self.checks:
            input_facets["dataQualityAssertions"] = data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet(
                assertions=[assertion(c) for c in self.checks])
        return InputDataset(namespace=namespace, name=name, facets=self.facets(pipeline), inputFacets=input_facets)

    def as_output(self, pipeline: str) -> OutputDataset:
        namespace, name = dataset_name(self.uri)
        output_facets: dict[str, Any] = {}
        if self.rows is not None:
            output_facets["outputStatistics"] = output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                rowCount=self.rows)
        return OutputDataset(namespace=namespace, name=name, facets=self.facets(pipeline), outputFacets=output_facets)


def _text(value: Any) -> str | None:
    return None if value is None else value if isinstance(value, str) else json.dumps(value, default=str)


def check_column(check: Any) -> str | None:
    """The column(s) a check is about: a ``column`` in its details or threshold, else the
    ``[col]`` of a validation check id (``transactions.column_values_to_be_unique[txn_id]#1``)."""
    for source in (check.details, check.threshold):
        if isinstance(source, dict) and isinstance(source.get("column"), str):
            return str(source["column"])
    found = re.search(r"\[([^\]]+)\]", check.check_id or "")
    return found.group(1) if found else None


def assertion(check: Any) -> data_quality_assertions_dataset.Assertion:
    """One Lockstep check result as one OpenLineage assertion."""
    params = {"policy": check.policy, "stage": check.stage, "region": check.region, "blocking": check.blocking}
    column = check_column(check)
    if column and "," in column:  # a check of several columns: no single column to name
        params["columns"] = column.split(",")
        column = None
    if check.unexpected_count is not None:
        params["unexpected_count"] = check.unexpected_count
    if check.element_count is not None:
        params["element_count"] = check.element_count
    if check.table_version is not None:
        params["table_version"] = check.table_version
    return data_quality_assertions_dataset.Assertion(
        assertion=check.check_type or check.check_id, success=bool(check.success),
        column=column,
        severity="error" if check.policy == "block" else "warn", name=check.check_id,
        description=check.message or None, expected=_text(check.threshold), actual=_text(check.observed),
        params=params,
    )


@dataclass
class StepLineage:
    """The datasets of one step, before they become OpenLineage datasets."""

    inputs: list[TableLineage] = field(default_factory=list)
    outputs: list[TableLineage] = field(default_factory=list)
    sources: list[tuple[str, str]] = field(default_factory=list)  # (namespace, name) read by ingest
    control_outputs: list[str] = field(default_factory=list)  # _lockstep tables written

    def to_operator_lineage(self, spec: PipelineSpec) -> OperatorLineage:
        inputs: list[Dataset] = [InputDataset(namespace=ns, name=n) for ns, n in self.sources]
        inputs += [t.as_input(spec.name) for t in self.inputs]
        outputs: list[Dataset] = [t.as_output(spec.name) for t in self.outputs]
        outputs += [OutputDataset(*dataset_name(uri), facets={
            "storage": storage_dataset.StorageDatasetFacet(storageLayer="delta", fileFormat="parquet")})
            for uri in self.control_outputs]
        return OperatorLineage(inputs=inputs, outputs=outputs)


def _tables(spec: PipelineSpec, regions: Iterable[str], layers: tuple[str, ...], root: str | None) -> list[TableLineage]:
    return [TableLineage(region, t.layer, t.name, spec.table_uri(region, t.layer, t.name, root))
            for region in regions for t in spec.tables_in(*layers)]


def _transform_inputs(spec: PipelineSpec, region: str, root: str | None) -> list[TableLineage]:
    names = list(dict.fromkeys(name for fs in spec.features for name in fs.inputs))
    return [TableLineage(region, spec.table(n).layer, n, spec.table_uri(region, spec.table(n).layer, n, root))
            for n in names]


def _sources(spec: PipelineSpec, region: str, interval: Interval | None) -> list[tuple[str, str]]:
    """The external data ingest reads for a region (synthetic sources are no dataset)."""
    out = []
    for t in spec.tables_in("raw", "reference"):
        src = spec.sources.get(t.source or "")
        if src is None:
            continue
        if src.kind == "delta":
            out.append(dataset_name(src.uri.replace("{region}", region)))
        elif src.kind in ("parquet", "csv", "jsonl") and interval is not None:
            path = src.path.replace("{region}", region).replace("{ds}", interval.ds)
            out.append(dataset_name(path.replace("{hour}", f"{interval.hour:02d}")))
    return list(dict.fromkeys(out))


def step_tables(spec: PipelineSpec, step: str, region: str | None, *, root: str | None = None,
                interval: Interval | None = None) -> StepLineage:
    """The datasets a step reads and writes, known before it runs (no versions, no checks)."""
    regions = [region] if region else list(spec.regions)
    raw = ("raw", "reference")
    if step in REGION_STEPS and region is None:
        raise ValueError(f"step {step} needs a region")
    if step == "ingest":
        return StepLineage(outputs=_tables(spec, regions, raw, root), sources=_sources(spec, regions[0], interval))
    if step == "validate_inputs":
        return StepLineage(inputs=_tables(spec, regions, raw, root))
    if step == "transform":
        return StepLineage(inputs=_transform_inputs(spec, regions[0], root), outputs=_tables(spec, regions, ("features",), root))
    if step == "validate":
        return StepLineage(inputs=_tables(spec, regions, ("features",), root))
    if step == "region":
        return StepLineage(inputs=_tables(spec, regions, raw, root) + _tables(spec, regions, ("features",), root),
                           outputs=_tables(spec, regions, (*raw, "features"), root),
                           sources=_sources(spec, regions[0], interval))
    every = _tables(spec, regions, (*raw, "features"), root)
    if step == "reconcile":
        return StepLineage(inputs=every, control_outputs=[spec.lockstep_uri("check_results", root)])
    if step == "gate":
        return StepLineage(inputs=every, control_outputs=[spec.lockstep_uri("certifications", root)])
    raise ValueError(f"unknown step {step!r}")


def table_name(check_table: str) -> str:
    """The table a check result names, written ``name`` or ``layer/name``."""
    return check_table.rsplit("/", 1)[-1]


def _attach(lineage: StepLineage, spec: PipelineSpec, checks: list[Any], root: str | None) -> None:
    """Put every check on the input dataset(s) it judged: a cross-region check (region ``*``)
    on that table in every region, a check of every table (``*``) on all of them; a check of
    a table the step did not list makes that table an input (the check read it)."""
    by_key = {(t.region, t.table): t for t in lineage.inputs}
    for c in checks:
        regions = list(spec.regions) if c.region in ("*", "", None) else [c.region]
        tables = [t.name for t in spec.tables] if c.table in ("*", "", None) else [table_name(c.table)]
        for region in regions:
            for name in tables:
                t = by_key.get((region, name))
                if t is None:
                    try:
                        layer = spec.table(name).layer
                    except Exception:
                        continue  # a check about something that is no table of the spec
                    t = by_key[(region, name)] = TableLineage(region, layer, name, spec.table_uri(region, layer, name, root))
                    lineage.inputs.append(t)
                t.checks.append(c)


def complete_lineage(spec: PipelineSpec, step: str, region: str | None, interval: Interval, *, root: str | None,
                     run_id: str) -> StepLineage:
    """The datasets of a step that ran: versions, schemas and rows from the evidence store,
    and every check result the run recorded for them, as assertions."""
    from pipelines.control.evidence import load
    from pipelines.control.results import run_results
    from pipelines.generation import generation_of

    lineage = step_tables(spec, step, region, root=root, interval=interval)
    # a region step's results are under its region's prefix (its key may read nothing else there)
    results = run_results(spec.control_root(root), spec.name, interval.key, run_id, spec.control_options(),
                          regions=[region] if region else (), control=region is None)
    if step in REGION_STEPS:
        if step != "ingest":
            layers = {"validate_inputs": ("raw", "reference"), "validate": ("features",),
                      "transform": ("features",), "region": ("raw", "reference", "features")}[step]
            tables = {t.name for t in spec.tables_in(*layers)}
            coverage = {"transform": True, "region": None}.get(step, False)  # transform records coverage
            mine = [c for c in results if c.region == region and table_name(c.table) in tables
                    and c.stage == "validation"
                    and (coverage is None or (c.check_type == "lookback_coverage") == coverage)]
            _attach(lineage, spec, mine, root)
        evidence = load(spec, [interval.key], root=root, region=region)
        for t in lineage.outputs + lineage.inputs:
            p = evidence.newest(t.region, t.layer, t.table, interval.key)
            judged = {c.table_version for c in t.checks if c.table_version is not None}
            if len(judged) == 1:  # validated at one version: that is the version this step read
                version = judged.pop()
                p = evidence.at(t.region, t.layer, t.table, interval.key, version) or p
                t.version = version
            elif p is not None:
                t.version = p.version
            if p is not None and p.version == t.version:
                t.schema, t.rows = p.schema, p.rows
        for t in lineage.inputs:
            t.rows = None  # rows are an output statistic
        return lineage
    generation = generation_of([c for c in results if c.stage != "validation"])
    if generation is not None:
        for t in lineage.inputs:
            t.version = generation.version(t.region, t.layer, t.table)
    if step == "reconcile":
        _attach(lineage, spec, [c for c in results if c.stage != "validation" and c.check_id != "generation.snapshot"], root)
    return lineage


# --------------------------------------------------------------------------- the extractor
@dataclass(frozen=True)
class LockstepTask:
    spec_path: str
    step: str
    region: str | None


def lockstep_task(operator: Any) -> LockstepTask | None:
    """The Lockstep step an operator runs, or ``None`` for any other task."""
    fn = getattr(operator, "python_callable", None)
    if fn is None or getattr(fn, "__module__", None) != DAG_MODULE:
        return None
    kwargs = dict(getattr(operator, "op_kwargs", None) or {})
    if "spec_path" in kwargs and "step" in kwargs:
        region = kwargs.get("region")
        return LockstepTask(str(kwargs["spec_path"]), str(kwargs["step"]), region if isinstance(region, str) else None)
    # reconcile and gate close over the spec path of the DAG they were built for
    spec_path = inspect.getclosurevars(fn).nonlocals.get("spec_path")
    step = getattr(fn, "__name__", "")
    if isinstance(spec_path, str) and step in ("reconcile", "gate"):
        return LockstepTask(spec_path, step, None)
    return None


class LockstepExtractor(PythonExtractor):
    """Lineage of Lockstep's ``@task`` steps (see the module's docstring); any other
    ``@task`` gets the provider's Python extractor."""

    @classmethod
    def get_operator_classnames(cls) -> list[str]:
        return ["_PythonDecoratedOperator"]

    def _failed(self, what: str, exc: BaseException, known: OperatorLineage | None = None) -> OperatorLineage:
        self.log.warning("Lockstep lineage of %s failed: %s", self.operator.task_id, exc)
        known = known or OperatorLineage()
        return OperatorLineage(inputs=known.inputs, outputs=known.outputs, run_facets={"extractionError": extraction_error_run.ExtractionErrorRunFacet(
            totalTasks=1, failedTasks=1, errors=[extraction_error_run.Error(
                errorMessage=f"{type(exc).__name__}: {exc}", stackTrace=None, task=what, taskNumber=0)])})

    def _execute_extraction(self) -> OperatorLineage | None:
        task = lockstep_task(self.operator)
        if task is None:
            return super()._execute_extraction()
        try:
            spec = load_spec(task.spec_path)
            return step_tables(spec, task.step, task.region, root=settings().root).to_operator_lineage(spec)
        except Exception as exc:
            return self._failed(f"{task.step} (start)", exc)

    def extract_on_complete(self, task_instance: Any) -> OperatorLineage | None:
        task = lockstep_task(self.operator)
        if task is None:
            return super().extract_on_complete(task_instance)
        if os.getpid() != _LOADED_IN:
            return self._failed(task.step, RuntimeError(
                "Delta tables cannot be read from the provider's forked emitter: set "
                "[openlineage] execute_in_thread = True for versions and checks"), self._execute_extraction())
        try:
            from pipelines.airflow.dag import _payload

            payload = _payload(task.spec_path, task.step, dict(task_instance.get_template_context()), region=task.region)
            spec = load_spec(task.spec_path)
            lineage = complete_lineage(spec, task.step, task.region, payload.interval, root=payload.root,
                                       run_id=payload.run_id)
            return lineage.to_operator_lineage(spec)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # deltalake's panics are BaseExceptions
            return self._failed(task.step, exc, self._execute_extraction())
