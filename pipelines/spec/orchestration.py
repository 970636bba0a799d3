"""How a pipeline runs and who hears of it: the generated DAG's defaults and Celery queues,
the consumers of its certified tables, alert targets, and storage maintenance."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field, model_validator

from pipelines.spec.base import Name, Region, _Model
from pipelines.spec.interval import Duration


class ConsumerSpec(_Model):
    """A model (or any reader) of the pipeline's certified tables."""

    name: Name = Field(description="the consumer's name (its DAG id, in the helper)")
    tables: list[Name] = Field(description="tables it reads")
    max_staleness: Duration | None = Field(
        None,
        description="the newest certified interval may end at most this long before the consumer's own "
        "logical date (now, outside Airflow); an older one fails the read",
        examples=["3d", "6h"],
    )
    feature_versions: dict[Name, str] = Field(
        default_factory=dict,
        description="table -> the feature version the consumer was trained on; a certified interval "
        "computed by another version fails the read instead of feeding the model",
        examples=[{"card_features": "1"}],
    )


class QueuesSpec(_Model):
    """Celery queues of the generated DAG: each region's tasks on its queue, reconcile and gate
    on the control queue (``airflow celery worker --queues ...`` serves them)."""

    default: str = Field(
        "default", min_length=1, description="queue of every region the regions map does not name",
        examples=["regional"],
    )
    regions: dict[Region, str] = Field(
        default_factory=dict, description="region -> queue (a region group's workers serve it)",
        examples=[{"eu-west": "eu", "eu-central": "eu", "us-east": "us"}],
    )
    control: str | None = Field(
        None, description="queue of reconcile and gate (the control plane's workers); default: `default`",
        examples=["control"],
    )


class AirflowSpec(_Model):
    """Defaults of the generated DAG, each overridable per pipeline."""

    retries: int = Field(2, ge=0)
    retry_delay: Duration = timedelta(minutes=2)
    execution_timeout: Duration = timedelta(hours=1)
    max_active_runs: int = Field(1, ge=1)
    max_active_tasks: int = Field(16, ge=1)
    pool: str | None = None
    catchup: bool = False
    tags: list[str] = Field(default_factory=lambda: ["lockstep"])
    task_granularity: Literal["step", "region"] = Field(
        "step",
        description="step: ingest, validate_inputs, transform, validate as four tasks per region; "
        "region: one task per region (less scheduling overhead on small intervals)",
    )
    queues: QueuesSpec | None = Field(
        None,
        description="Celery queues per region and for the control plane; unset: Airflow's default queue",
        examples=[{"default": "regional", "control": "control", "regions": {"eu-west": "eu"}}],
    )
    trigger: Literal["schedule", "landing"] = Field(
        "schedule",
        description="schedule: a run per interval on the cron schedule; landing: event-driven, a run per interval "
        "once its files have landed (every region's file of every file source) and it closed plus its late "
        "allowance, started by a `<pipeline>_landing` DAG on the asset `lockstep://<pipeline>/landing` (post a "
        "landing notification to it; duplicates are harmless: one run per interval and delivered content)",
        examples=["landing"],
    )
    landing_lookback: Duration = Field(
        timedelta(days=1),
        description="landing trigger: how far back from now a notification looks for landed intervals (an "
        "event's extra may also name intervals: {\"intervals\": [\"2026-01-01T05\"]})",
        examples=["6h", "2d"],
    )


class AlertTarget(_Model):
    """Where Lockstep's alerts go (sent through Airflow's notifier interface). Credentials live
    in the Airflow connection ``conn_id``, never in the spec: for ``smtp`` its host, port,
    login and password (extra ``{"starttls": true}`` for STARTTLS); for ``webhook`` its host
    (a URL, ``http(s)://...``) with optional login/password (basic auth) and extra
    ``{"headers": {...}}``."""

    kind: Literal["smtp", "webhook"]
    conn_id: str = Field(min_length=1, description="the Airflow connection holding the target's credentials")
    to: list[str] = Field(default_factory=list, description="smtp: recipients")
    sender: str = Field("lockstep@localhost", description="smtp: From address")
    on: tuple[Literal["blocked", "stale"], ...] = Field(
        ("blocked", "stale"),
        description="blocked: a generation blocks; stale: the generation in force is older than a "
        "consumer's max_staleness",
    )

    @model_validator(mode="after")
    def _recipients(self) -> AlertTarget:
        if self.kind == "smtp" and not self.to:
            raise ValueError("an smtp alert target needs recipients in `to`")
        return self


class MaintenanceSpec(_Model):
    """Storage maintenance (``lockstep maintain``, the ``lockstep_maintenance`` DAG): compaction,
    checkpoints, and a vacuum that keeps every version a decision inside the rollback window,
    the certification in force or an unexpired override refers to."""

    rollback_window: Duration = Field(
        timedelta(days=30),
        description="generations of intervals this close to the newest decided interval stay readable "
        "(read_certified, rollback, override); older versions' files may be removed",
    )
    min_file_age: Duration = Field(
        timedelta(hours=1),
        description="unreferenced files younger than this are kept (a concurrent writer may be about to "
        "commit them); rounded up to whole hours",
    )
    target_file_size: int | None = Field(None, ge=1 << 20, description="compaction target in bytes; default deltalake's")
