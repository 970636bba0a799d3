"""DAG factory: one Lockstep spec becomes one Airflow DAG.

Shape of the DAG, per data interval::

    region[eu-west] ┐   ingest -> validate_inputs -> transform -> validate      (one mapped
    region[us-east] ├─▶ task group per region)
    ...             ┘
                    ──▶ reconcile ──▶ gate ──(outlet: lockstep://<pipeline>/certified)──▶ model DAGs

reconcile and gate run whatever the region tasks did (trigger rule ``all_done``): a region
whose tasks failed is named in a blocked decision with its error (an outage is a decision,
with an alert), and the run still fails.

Every task runs one step of :mod:`pipelines.runner` for the run's data interval and returns
references only (table URIs, Delta versions, row counts), so the DAG runs unchanged under
LocalExecutor and CeleryExecutor. The gate emits the certified Asset event, with the
interval and generation id in its ``extra``, only when it certifies; a blocked interval
fails the gate with the reasons and emits nothing.

This module imports Airflow's Task SDK and the spec (pydantic, yaml) only: polars,
deltalake and Great Expectations are imported inside the tasks, at run time, never when the
dag-processor parses a DAG file.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import DAG, Asset, CronDataIntervalTimetable, task, task_group
from airflow.sdk.exceptions import AirflowFailException

from pipelines.airflow.queues import (
    RegionGroup,
    check_storage_for_executor,
    control_queue,
    region_groups,
)
from pipelines.spec import PipelineSpec, load_spec
from pipelines.spec.settings import settings

if TYPE_CHECKING:
    from pipelines.spec import Interval

log = logging.getLogger(__name__)

#: modules a task process holds at start when it was forked warm (:mod:`pipelines.airflow.warm`)
WARM_MARKERS = ("pipelines.runner.steps", "great_expectations", "polars")
PRESETS = {"@daily": "0 0 * * *", "@hourly": "0 * * * *"}
REGION_STEPS = ("ingest", "validate_inputs", "transform", "validate")


def certified_asset(pipeline: str) -> Asset:
    """The Asset a pipeline's gate updates when it certifies an interval."""
    return Asset(uri=f"lockstep://{pipeline}/certified", name=f"{pipeline}_certified", group="lockstep")


def landing_asset(pipeline: str) -> Asset:
    """The Asset a delivery notifies (``airflow.trigger: landing``): its events start the
    ``<pipeline>_landing`` DAG, which starts one run per landed interval and delivery."""
    return Asset(uri=f"lockstep://{pipeline}/landing", name=f"{pipeline}_landing", group="lockstep")


def _timetable(spec: PipelineSpec) -> Any:
    """Lockstep processes data intervals: a cron schedule with real [start, end) intervals
    (none under the landing trigger: its runs are started per landed interval)."""
    if spec.airflow.trigger == "landing" or spec.schedule in ("None", "none", "@once") or not spec.schedule:
        return None
    cron = PRESETS.get(spec.schedule, spec.schedule)
    return CronDataIntervalTimetable(cron, timezone="UTC")


def _queue(queue: str | None) -> dict[str, Any]:
    """``queue=`` for a task when the spec sets one (else Airflow's default queue)."""
    return {"queue": queue} if queue else {}


def run_interval_of(spec: PipelineSpec, conf: Mapping[str, Any] | None, start: datetime | None,
                    end: datetime | None, logical_date: datetime | None) -> Interval | None:
    """The interval a DAG run of ``spec`` processes, from the run's conf and dates (``None``:
    a run without any date, whose interval is the newest closed one when it runs).

    ``conf["interval"]`` (a run the landing DAG started, or one triggered with it) wins over
    the run's dates; a run without a data interval (asset-triggered, or manual on a trigger
    timetable) processes the interval, of the pipeline's granularity, its logical date falls in.
    """
    from pipelines.spec import Interval

    if conf and "interval" in conf:
        return spec.interval_at(str(conf["interval"]))
    if start is not None and end is not None and start != end:
        return Interval(start=start, end=end)
    when = start or logical_date
    return None if when is None else spec.interval_at(Interval(start=when, end=when).start)


def _payload(spec_path: str, step: str, context: dict[str, Any], region: str | None = None) -> Any:
    from pipelines.runner import StepPayload

    dag_run = context.get("dag_run")
    conf = dag_run.conf if dag_run is not None and dag_run.conf else {}
    spec = load_spec(spec_path)
    iv = run_interval_of(spec, conf, context.get("data_interval_start"), context.get("data_interval_end"),
                         context.get("logical_date"))
    if iv is None:
        # no date at all: the newest interval that closed plus the late allowance (the one
        # open now would be refused: runs wait for an interval to close)
        from pipelines.preflight import latest_closed

        iv = latest_closed(spec) or spec.interval_at(datetime.now(UTC))
    user = getattr(dag_run, "triggering_user_name", None)
    return StepPayload(spec=spec_path, step=step, region=region, interval_start=iv.start, interval_end=iv.end,
                       run_id=lockstep_run_id(context), actor=f"airflow:{user or 'scheduler'}",
                       root=settings().root)


def lockstep_run_id(context: Mapping[str, Any]) -> str:
    """The run id a task's step records: Airflow's run id, and ``<run id>.clear<n>`` once the
    run was cleared ``n`` times (a region re-run: :func:`region_task_ids`). Each pass of a run's
    reconcile and gate then judges its own results and failures, not an earlier pass's too."""
    cleared = getattr(context.get("dag_run"), "clear_number", 0) or 0
    return f"{context['run_id']}.clear{cleared}" if cleared else str(context["run_id"])


def region_task_ids(spec: PipelineSpec, region: str) -> list[tuple[str, int]]:
    """The task instances, ``(task id, map index)``, of ``region``'s steps in the pipeline's
    DAG (its queue's mapped task group, at the region's place in the group)."""
    steps = REGION_STEPS if spec.airflow.task_granularity == "step" else ("region",)
    for group in region_groups(spec):
        if region in group.regions:
            index = group.regions.index(region)
            return [(f"{group.group_id}.{step}", index) for step in steps]
    raise KeyError(f"{spec.name}: no region {region!r}")


def _pipeline_name(spec_path: str) -> str:
    from pipelines.spec import load_spec

    return load_spec(spec_path).name


def _run(payload: Any) -> dict[str, Any]:
    """Run a step; an error no retry can mend fails the task at once."""
    import time

    warm = all(m in sys.modules for m in WARM_MARKERS)
    log.info("task process %s", "warm: Lockstep's modules inherited from the executor" if warm
             else "cold: importing Lockstep's modules")
    from pipelines.airflow.metrics import emit_step
    from pipelines.errors import LockstepError
    from pipelines.runner import run_step

    t0 = time.monotonic()
    try:
        result = run_step(payload)
        emit_step(_pipeline_name(payload.spec), payload.step, time.monotonic() - t0, result)
        return result
    except LockstepError as exc:
        if exc.retryable:
            raise
        raise AirflowFailException(str(exc)) from exc


def blocked_message(pipeline: str, interval: str, result: dict[str, Any], *, width: int = 160) -> str:
    """The gate's failure, short and first: the first reason on the first line, every other
    reason on a line of its own after it, and how to see the whole account.

    >>> print(blocked_message("p", "2026-01-02", {"generation_id": "g", "reasons": [
    ...     {"check_id": "parity.merchant_risk", "region": "eu-central", "table": "merchant_risk",
    ...      "message": "differs"}]}))
    BLOCKED p 2026-01-02: parity.merchant_risk eu-central/merchant_risk: differs
      generation g: 1 blocking check(s); see `lockstep explain p --date 2026-01-02`
    """
    reasons = [f"{r['check_id']} {r['region']}/{r['table']}: {r['message']}" for r in result["reasons"]]

    def cut(text: str) -> str:
        return text if len(text) <= width else text[: width - 1] + "…"

    first = cut(reasons[0]) if reasons else "no reason recorded"
    more = [f"  - {cut(r)}" for r in reasons[1:]]
    return "\n".join([
        f"BLOCKED {pipeline} {interval}: {first}",
        f"  generation {result['generation_id']}: {len(reasons)} blocking check(s); "
        f"see `lockstep explain {pipeline} --date {interval}`",
        *more,
    ])


def undelivered(groups: list[RegionGroup], steps: tuple[str, ...], context: dict[str, Any]) -> dict[str, str]:
    """Region -> its steps that did not succeed in this DAG run (``"ingest: failed, transform:
    upstream_failed"``), from Airflow's task states; regions whose every step succeeded are absent.
    A step with no task instance at all (the region's mapping never expanded) counts as not run."""
    ti = context["ti"]
    task_ids = [f"{g.group_id}.{step}" for g in groups for step in steps]
    states = ti.get_task_states(dag_id=ti.dag_id, task_ids=task_ids, run_ids=[ti.run_id]).get(ti.run_id, {})
    out: dict[str, str] = {}
    for g in groups:
        for i, region in enumerate(g.regions):
            bad = [f"{step}: {states.get(f'{g.group_id}.{step}_{i}') or 'not run'}" for step in steps
                   if states.get(f"{g.group_id}.{step}_{i}") != "success"]
            if bad:
                out[region] = ", ".join(bad)
    return out


def build_dag(spec_or_path: PipelineSpec | str | Path, *, dag_id: str | None = None) -> DAG:
    """Build the DAG of a pipeline spec (a path, a shipped name, or a loaded spec).

    >>> dag = build_dag("dags/fraud_features.yaml")      # in a DAG file
    """
    spec = spec_or_path if isinstance(spec_or_path, PipelineSpec) else load_spec(spec_or_path)
    if spec.path is None:
        raise ValueError("build_dag needs a spec loaded from a file: tasks re-load it by path")
    spec_path = str(spec.path)
    check_storage_for_executor(spec)  # a relative root under Celery: one clear error at parse
    asset = certified_asset(spec.name)
    af = spec.airflow
    default_args: dict[str, Any] = {
        "owner": "lockstep",
        "retries": af.retries,
        "retry_delay": af.retry_delay,
        "execution_timeout": af.execution_timeout,
    }
    if af.pool:
        default_args["pool"] = af.pool
    start = spec.start_date
    # the spec's description, in the DAG list and as the DAG's docs (not this factory's docstring)
    description = spec.description or f"Lockstep pipeline {spec.name}"
    with DAG(
        dag_id=dag_id or spec.name,
        description=description,
        schedule=_timetable(spec),
        start_date=datetime(start.year, start.month, start.day, tzinfo=UTC),
        catchup=af.catchup,
        max_active_runs=af.max_active_runs,
        max_active_tasks=af.max_active_tasks,
        tags=list(af.tags),
        default_args=default_args,
        doc_md=description,
    ) as dag:

        steps = REGION_STEPS if af.task_granularity == "step" else ("region",)

        def region_group(group: RegionGroup) -> Any:
            # one mapped group per queue: Airflow gives every map index of a task one queue
            @task_group(group_id=group.group_id)
            def mapped(region: str) -> None:
                previous = None
                for step in steps:
                    t = _region_step.override(task_id=step, **_queue(group.queue))(
                        step=step, region=region, spec_path=spec_path)
                    if previous is not None:
                        previous >> t
                    previous = t

            return mapped.expand(region=list(group.regions))

        control = _queue(control_queue(spec))

        groups = region_groups(spec)

        # reconcile and gate run whatever the regions did (an outage is a decision: the gate
        # records a block naming each region that did not deliver, and fails the run)
        @task(task_id="reconcile", multiple_outputs=False, trigger_rule="all_done")
        def reconcile(**context: Any) -> dict[str, Any]:
            payload = _payload(spec_path, "reconcile", context)
            missing = undelivered(groups, steps, context)
            return _run(payload.model_copy(update={"undelivered": missing}) if missing else payload)

        @task(task_id="gate", outlets=[asset], retries=0, multiple_outputs=False, trigger_rule="all_done")
        def gate(**context: Any) -> dict[str, Any]:
            from pipelines.airflow.audit import export_decided

            payload = _payload(spec_path, "gate", context)
            result = _run(payload)
            export_decided(spec, root=payload.root)  # the decision's audit event, now (when a transport is set)
            if spec.alerts:
                from pipelines.airflow.alerts import after_gate

                after_gate(spec, payload.interval.key, result, context)
            if result["status"] != "certified":
                raise AirflowFailException(blocked_message(spec.name, payload.interval.key, result))
            iv = payload.interval
            context["outlet_events"][asset].extra = {
                "pipeline": spec.name, "interval": iv.key, "interval_start": iv.start.isoformat(),
                "generation_id": result["generation_id"],
            }
            return result

        regions = [region_group(g) for g in groups]
        if spec.late_allowance and af.trigger == "schedule":
            # an interval is processed when it closes plus the sources' late allowance: the run
            # starts at the close (the cron timetable) and this sensor holds it for the allowance,
            # giving up its worker slot between pokes
            from airflow.providers.standard.sensors.time_delta import TimeDeltaSensor

            wait = TimeDeltaSensor(task_id="wait_for_late_data", delta=spec.late_allowance, mode="reschedule",
                                   poke_interval=min(60.0, max(5.0, spec.late_allowance.total_seconds() / 10)))
            if control:
                wait.queue = control["queue"]
            wait >> regions
        regions >> reconcile.override(**control)() >> gate.override(**control)()
    if af.trigger == "landing":
        build_landing_dag(spec, pipeline_dag_id=dag.dag_id)
    return dag


def build_landing_dag(spec_or_path: PipelineSpec | str | Path, *, pipeline_dag_id: str | None = None) -> DAG:
    """The ``<pipeline>_landing`` DAG of a pipeline under ``airflow.trigger: landing``
    (:func:`build_dag` builds it beside the pipeline's DAG, registered with it).

    Scheduled on :func:`landing_asset`: each run reads the notifications that started it
    (their ``extra`` may name intervals), asks :func:`pipelines.landing.ready` which intervals
    have landed, and starts one pipeline run per interval and delivery, under a run id derived
    from both; a run id Airflow already has is skipped, so duplicate notifications start
    nothing twice."""
    from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator

    spec = spec_or_path if isinstance(spec_or_path, PipelineSpec) else load_spec(spec_or_path)
    if spec.path is None:
        raise ValueError("build_landing_dag needs a spec loaded from a file: tasks re-load it by path")
    spec_path = str(spec.path)
    target = pipeline_dag_id or spec.name
    control = _queue(control_queue(spec))
    start = spec.start_date
    with DAG(
        dag_id=f"{target}_landing",
        description=f"Starts a run of {target} for each interval whose files have landed",
        schedule=[landing_asset(spec.name)],
        start_date=datetime(start.year, start.month, start.day, tzinfo=UTC),
        catchup=False,
        max_active_runs=1,  # notifications that arrive meanwhile are taken by the next run, together
        tags=[*spec.airflow.tags, "landing"],
        default_args={"owner": "lockstep", "retries": spec.airflow.retries, "retry_delay": spec.airflow.retry_delay},
        doc_md=build_landing_dag.__doc__,
    ) as dag:

        @task(task_id="landed", multiple_outputs=False, **control)
        def landed(**context: Any) -> list[dict[str, Any]]:
            from pipelines.landing import named_intervals, ready

            events = context["triggering_asset_events"]
            extras = [e.extra for evs in events.values() for e in evs]
            found = ready(load_spec(spec_path), now=datetime.now(UTC), intervals=named_intervals(extras))
            print(f"{len(extras)} notification(s); landed: {[(x.interval.key, x.run_id) for x in found] or 'none'}")
            return [{"trigger_run_id": x.run_id, "conf": {"interval": x.interval.key, "content": x.content}}
                    for x in found]

        TriggerDagRunOperator.partial(
            task_id="start_runs", trigger_dag_id=target, logical_date=None, skip_when_already_exists=True,
            wait_for_completion=False, **control,
        ).expand_kwargs(landed())
    return dag


#: mapped region tasks show their region in Airflow's views, not 0..n
REGION_MAP_INDEX = "{{ task.op_kwargs['region'] }}"


@task(multiple_outputs=False, map_index_template=REGION_MAP_INDEX)
def _region_step(step: str, region: str, spec_path: str, **context: Any) -> dict[str, Any]:
    return _run(_payload(spec_path, step, context, region=region))
