"""The model DAGs of a pipeline with a ``models:`` section: its release and its scoring.

``<pipeline>_release`` (:func:`build_release_dag`), started by an operator (or on a
schedule given here), one candidate per run::

    plan ─▶ train ─▶ shadow[eu-west] ┐ (mapped per region group,
                     shadow[us-east] ├─ on the group's queue) ─▶ evaluate ─▶ promote
                     ...             ┘        (outlet: lockstep://<pipeline>/release)

A run's conf may name ``interval`` (the certified interval the candidate is evaluated on;
default the newest certified), ``until`` (the training window's last interval; default the
one before ``interval``), ``exclude`` (intervals left out of the training window, recorded
in the model's tags), ``version`` (a version registered already, e.g. by ``lockstep release
train`` where every region's features may be read: ``train`` takes it instead of training),
``effective_from`` and ``why``. The promotion's refusals (the models'
gate, with every reason) fail ``promote`` and emit nothing. A shadow task only reads the
control plane and returns its region's metrics; ``evaluate`` records them there.

``<pipeline>`` scoring (:func:`build_scoring_dag`), on the certified Asset: the interval the
event certified and the release in force *for that interval* (none: the run fails saying
so), claimed for every region by the control task ``release_in_force`` (one commit to the
release log); then each region scored on its own queue with exactly the claimed release (the
log only read), and a check that every region carried it. Tasks call
:mod:`pipelines.release_flow` and pass its small dicts only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Asset, task
from airflow.sdk.exceptions import AirflowFailException

from pipelines.airflow.consumer import certified_interval
from pipelines.airflow.dag import REGION_MAP_INDEX, _queue, certified_asset
from pipelines.airflow.queues import control_queue, region_groups
from pipelines.spec import PipelineSpec, load_spec
from pipelines.spec.settings import settings

__all__ = ["build_release_dag", "build_scoring_dag", "release_asset"]


def release_asset(pipeline: str) -> Asset:
    """The Asset a pipeline's release DAG updates when it promotes a model."""
    return Asset(uri=f"lockstep://{pipeline}/release", name=f"{pipeline}_release", group="lockstep")


def _spec(spec_or_path: PipelineSpec | str | Path, what: str) -> PipelineSpec:
    spec = spec_or_path if isinstance(spec_or_path, PipelineSpec) else load_spec(spec_or_path)
    if spec.path is None:
        raise ValueError(f"{what} needs a spec loaded from a file: tasks re-load it by path")
    if spec.models is None:
        from pipelines.errors import SpecError

        raise SpecError(f"{spec.name}: {what} needs the spec's models: section", field="models")
    return spec


def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a step; an error no retry can mend fails the task at once, with its message."""
    from pipelines.errors import LockstepError

    try:
        return fn(*args, **kwargs)
    except LockstepError as exc:
        if exc.retryable:
            raise
        raise AirflowFailException(str(exc)) from exc


def _conf(context: dict[str, Any]) -> dict[str, Any]:
    run = context.get("dag_run")
    return dict(run.conf) if run is not None and run.conf else {}


def _who(context: dict[str, Any]) -> str:
    """Who a task acts for: the user who triggered the run (else the scheduler), as Airflow knows them."""
    return f"airflow:{getattr(context.get('dag_run'), 'triggering_user_name', None) or 'scheduler'}"


def _defaults(spec: PipelineSpec) -> dict[str, Any]:
    af = spec.airflow
    return {"owner": "lockstep", "retries": af.retries, "retry_delay": af.retry_delay,
            "execution_timeout": af.execution_timeout}


def _start(spec: PipelineSpec) -> datetime:
    return datetime(spec.start_date.year, spec.start_date.month, spec.start_date.day, tzinfo=UTC)


def build_release_dag(spec_or_path: PipelineSpec | str | Path, *, dag_id: str | None = None,
                      schedule: Any = None) -> DAG:
    """The ``<pipeline>_release`` DAG: train on certified data, register, shadow-score in every
    region on its queue, evaluate, promote (emitting :func:`release_asset`).

    >>> dag = build_release_dag("dags/fraud_features.yaml")      # in a DAG file
    """
    spec = _spec(spec_or_path, "build_release_dag")
    spec_path, control = str(spec.path), _queue(control_queue(spec))
    asset = release_asset(spec.name)
    with DAG(
        dag_id=dag_id or f"{spec.name}_release",
        description=f"Train {spec.models.name if spec.models else ''} on certified {spec.name} data, shadow-score it "
                    "in every region, evaluate and promote it",
        schedule=schedule, start_date=_start(spec), catchup=False, max_active_runs=1,
        tags=[*spec.airflow.tags, "model", "release"], default_args=_defaults(spec), doc_md=__doc__,
    ) as dag:

        @task(task_id="plan", **control)
        def plan(**context: Any) -> dict[str, Any]:
            from pipelines.release_flow import plan_release

            conf = _conf(context)
            return _call(plan_release, load_spec(spec_path), conf.get("interval"),
                         effective_from=conf.get("effective_from"), until=conf.get("until"),
                         root=settings().root).to_json()

        @task(task_id="train", **control)
        def train(the_plan: dict[str, Any], **context: Any) -> dict[str, Any]:
            from pipelines.release_flow import ReleasePlan, registered_candidate, train_candidate

            conf = _conf(context)
            if conf.get("version"):  # trained elsewhere (where every region may be read): that version
                return _call(registered_candidate, load_spec(spec_path), str(conf["version"]), root=settings().root)
            return _call(train_candidate, load_spec(spec_path), ReleasePlan(**the_plan),
                         exclude=conf.get("exclude"), root=settings().root)

        @task(task_id="evaluate", **control)
        def evaluate(the_plan: dict[str, Any], candidate: dict[str, Any], shadows: Any) -> dict[str, Any]:
            from pipelines.release_flow import evaluate as evaluate_

            found = [s for group in shadows for s in group]  # one mapped task per region group
            return _call(evaluate_, load_spec(spec_path), candidate["version"], found, until=the_plan["evaluate_on"],
                         root=settings().root)

        @task(task_id="promote", outlets=[asset], retries=0, **control)
        def promote(the_plan: dict[str, Any], evaluation: dict[str, Any], **context: Any) -> dict[str, Any]:
            from pipelines.release_flow import ReleasePlan, release

            who = _who(context)
            why = _conf(context).get("why") or f"{dag.dag_id} run {context['run_id']}"
            from pipelines.airflow.audit import export_decided

            out = _call(release, load_spec(spec_path), evaluation["version"], ReleasePlan(**the_plan),
                        why=why, who=who, root=settings().root)
            export_decided(load_spec(spec_path), root=settings().root)
            context["outlet_events"][asset].extra = {
                "pipeline": spec.name, "release_id": out["release_id"], "model_version": out["model_version"],
                "effective_from": out["effective_from"]}
            return out

        the_plan = plan()
        candidate = train(the_plan)  # type: ignore[arg-type]
        shadows = [
            _shadow.override(task_id=f"shadow_{g.group_id}".replace("shadow_region", "shadow"), **_queue(g.queue))
            .partial(spec_path=spec_path, candidate=candidate, the_plan=the_plan).expand(region=list(g.regions))
            for g in region_groups(spec)
        ]
        evaluation = evaluate(the_plan, candidate, shadows)  # type: ignore[arg-type]
        promote(the_plan, evaluation)  # type: ignore[arg-type]
    return dag


@task(multiple_outputs=False, map_index_template=REGION_MAP_INDEX)
def _shadow(spec_path: str, candidate: dict[str, Any], the_plan: dict[str, Any], region: str,
            **context: Any) -> dict[str, Any]:
    from pipelines.release_flow import shadow_score

    return _call(shadow_score, load_spec(spec_path), candidate["version"], the_plan["evaluate_on"], region,
                 root=settings().root, who=_who(context))


def build_scoring_dag(spec_or_path: PipelineSpec | str | Path, *, dag_id: str | None = None) -> DAG:
    """The scoring DAG: each certified interval of the pipeline, scored in every region (on the
    region's queue) with the release in force for that interval.

    >>> dag = build_scoring_dag("dags/fraud_features.yaml", dag_id="fraud_model_scoring")
    """
    spec = _spec(spec_or_path, "build_scoring_dag")
    spec_path, control = str(spec.path), _queue(control_queue(spec))
    with DAG(
        dag_id=dag_id or f"{spec.name}_scoring",
        description=f"Scores each certified interval of {spec.name} in every region with the release in force for it",
        schedule=[certified_asset(spec.name)], start_date=_start(spec), catchup=False,
        tags=[*spec.airflow.tags, "model"], default_args=_defaults(spec), doc_md=__doc__,
    ) as dag:

        @task(task_id="release_in_force", **control)
        def in_force(**context: Any) -> dict[str, Any]:
            from pipelines.release_flow import scoring_interval

            interval = _conf(context).get("interval") or certified_interval(context)
            return _call(scoring_interval, load_spec(spec_path), interval, claim=True, who=_who(context),
                         root=settings().root)

        @task(task_id="scored", **control)
        def scored(chosen: dict[str, Any], results: Any) -> dict[str, Any]:
            found = [s for group in results for s in group]  # one mapped task per region group
            ids = sorted({i for s in found for i in s["release_id"]})
            if ids and ids != [chosen["release_id"]]:
                raise AirflowFailException(f"{spec.name} {chosen['interval']}: scored with {ids}, "
                                           f"expected {chosen['release_id']}")
            return {**chosen, "rows": sum(s["rows"] for s in found), "regions": {s["region"]: s for s in found}}

        chosen = in_force()
        results = [
            _score.override(task_id=f"score_{g.group_id}".replace("score_region", "score"), **_queue(g.queue))
            .partial(spec_path=spec_path, chosen=chosen).expand(region=list(g.regions))
            for g in region_groups(spec)
        ]
        scored(chosen, results)  # type: ignore[arg-type]
    return dag


@task(multiple_outputs=False, map_index_template=REGION_MAP_INDEX)
def _score(spec_path: str, chosen: dict[str, Any], region: str) -> dict[str, Any]:
    from pipelines.release_flow import score_region

    return _call(score_region, load_spec(spec_path), chosen["interval"], region, release_id=chosen["release_id"],
                 root=settings().root)
