"""Helpers for model DAGs that consume a pipeline's certified Asset.

A consumer task reads through :func:`read_for_consumer`: the generation whose Asset event
triggered the run (else the generation in force), the consumer's ``max_staleness`` measured
against the run's own logical date, and its pinned feature versions, all from the spec::

    @task
    def score(**context):
        from pipelines import load_spec, read_for_consumer

        spec = load_spec(SPEC)
        for region in spec.regions:
            features = read_for_consumer(spec, "payments_scoring", "customer_features", region, context)

This module imports neither Airflow nor polars at import time: a DAG file may import it.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl

    from pipelines.spec import PipelineSpec


def _newest(context: Any, field: str) -> str | None:
    """``field`` of the newest triggering asset event's ``extra`` that has it (``None``: none has)."""
    events = (context or {}).get("triggering_asset_events") or {}
    newest: tuple[Any, str] | None = None
    for asset_events in events.values():
        for event in asset_events:
            value = (getattr(event, "extra", None) or {}).get(field)
            if value and (newest is None or event.timestamp > newest[0]):
                newest = (event.timestamp, str(value))
    return None if newest is None else newest[1]


def certified_generation(context: Any) -> str | None:
    """The generation id of the newest certified-asset event that triggered this run.

    ``None`` when the run was not asset-triggered (then consumers read the generation in
    force)."""
    return _newest(context, "generation_id")


def certified_interval(context: Any) -> str | None:
    """The interval key of the newest certified-asset event that triggered this run (``None``:
    the run was not asset-triggered)."""
    return _newest(context, "interval")


def logical_date(context: Any) -> datetime | None:
    """The run's logical date (else the end of its data interval); ``None`` outside Airflow."""
    context = context or {}
    when = context.get("logical_date") or context.get("data_interval_end")
    if when is None:
        return None
    return datetime.fromisoformat(when.isoformat())  # a plain datetime, whatever Airflow handed out


def read_for_consumer(
    spec: PipelineSpec, consumer: str, table: str, region: str, context: Any = None, *,
    root: str | None = None,
) -> pl.LazyFrame:
    """``table`` of ``region`` as the spec's ``consumer`` may read it.

    The generation that triggered this run (its Asset event), else the one in force; its
    interval must have ended within the consumer's ``max_staleness`` of the run's logical
    date (now, when ``context`` is None), and a consumer pinned to a feature version reads
    only data computed by that version. Every refusal is a
    :class:`~pipelines.errors.CertificationError` that says why.
    """
    from pipelines.certify import read_certified
    from pipelines.spec.settings import settings

    return read_certified(
        spec, table, region, at=certified_generation(context), root=root or settings().root,
        consumer=consumer, now=logical_date(context),
    )
