"""Metrics through Airflow's Stats (StatsD or OpenTelemetry, as ``[metrics]`` configures it).

Emitted by the DAG's tasks (:func:`pipelines.airflow.dag.build_dag`) after each step, so a
deployment's existing metrics pipeline sees Lockstep next to Airflow's own metrics. Names
(StatsD carries no tags by default, so the dimensions are in the name; ``[metrics]
statsd_prefix`` is prepended):

=============================================================  =======  =========================
name                                                           type     when
=============================================================  =======  =========================
``lockstep.<pipeline>.stage.<step>.duration``                  timer    every step (ms)
``lockstep.<pipeline>.gate.<certified|blocked>``               counter  every gate decision
``lockstep.<pipeline>.blocked_checks.<check_type>.<region>``   counter  each blocking reason
``lockstep.<pipeline>.rows.<region>.<layer>.<table>``          gauge    rows a step wrote
``lockstep.<pipeline>.quarantined_rows.<region>.<table>``      gauge    rows a step quarantined
=============================================================  =======  =========================

Region ``*`` (a check across regions) is reported as ``all``.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from airflow.sdk.observability import stats

log = logging.getLogger(__name__)


def _part(value: str) -> str:
    return stats.normalize_name_for_stats("all" if value in ("*", "") else value, log_warning=False)


def emit_step(pipeline: str, step: str, seconds: float, result: dict[str, Any]) -> None:
    """Report one step: its duration, what it wrote, and (the gate) its decision."""
    p = _part(pipeline)
    try:
        stats.timing(f"lockstep.{p}.stage.{_part(step)}.duration", timedelta(seconds=seconds))
        for ref in result.get("tables") or []:
            parts = str(ref.get("uri", "")).rstrip("/").split("/")
            if len(parts) < 3:
                continue
            region, layer, table = parts[-3:]
            rows = int(ref.get("rows") or 0)
            if layer == "quarantine":
                stats.gauge(f"lockstep.{p}.quarantined_rows.{_part(region)}.{_part(table)}", rows)
            else:
                stats.gauge(f"lockstep.{p}.rows.{_part(region)}.{_part(layer)}.{_part(table)}", rows)
        if step == "gate" and "status" in result:
            stats.incr(f"lockstep.{p}.gate.{_part(str(result['status']))}")
            for r in result.get("reasons") or []:
                stats.incr(f"lockstep.{p}.blocked_checks.{_part(str(r.get('check_type') or 'check'))}."
                           f"{_part(str(r.get('region') or '*'))}")
    except Exception as exc:  # metrics never fail a step
        log.warning("lockstep metrics for %s %s not sent: %s", pipeline, step, exc)
