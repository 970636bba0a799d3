"""The interval an Airflow DAG run processes: what the view's DAG-run tab shows.

Airflow's DAG-run page embeds ``/lockstep/pipelines/{DAG_ID}?run_id={RUN_ID}`` (the plugin's
``dag_run`` external view; Airflow substitutes both). The run's interval is, in this order:

1. what the control plane recorded under the run id: the decision its gate made, else the
   check results or step failures its regions recorded (:func:`~pipelines.matrix_page.interval_of_run`);
2. else (a run that recorded nothing yet: queued, waiting for its interval to close) the
   run as Airflow's REST API describes it, asked with the caller's own token: the interval its
   ``conf`` names (a run the landing DAG or a re-run started), else its data interval, else
   the interval its logical date falls in; the DAG's tasks pick the same one.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import HTTPException, Request

__all__ = ["caller_token", "run_interval"]


def caller_token(request: Request) -> str | None:
    """The caller's JWT as the api-server's security read it: the bearer header, else the UI's cookie."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:]
    return request.cookies.get("_token") or None


def _from_airflow(request: Request, spec: Any, run_id: str) -> str | None:
    from pipelines.airflow.client import AirflowClient, AirflowError

    token = caller_token(request)
    if token is None:
        raise HTTPException(401, "no token")
    client = AirflowClient.with_token(str(request.base_url).rstrip("/"), token)
    try:
        run = client.api("GET", f"/dags/{quote(spec.name, safe='')}/dagRuns/{quote(run_id, safe='')}")
    except AirflowError as exc:
        status = int(exc.context.get("status") or 502)
        if status == 404:
            return None
        raise HTTPException(status if status in (401, 403) else 502,
                            f"Airflow did not describe run {run_id!r}: {exc.message[:300]}") from None
    finally:
        client.close()
    conf = run.get("conf") or {}
    if isinstance(conf, dict) and conf.get("interval"):
        return str(spec.interval_at(str(conf["interval"])).key)
    start, end = run.get("data_interval_start"), run.get("data_interval_end")
    when = start if start and end and start != end else (start or run.get("logical_date"))
    return None if not when else str(spec.interval_at(str(when).replace("Z", "+00:00")).key)


def run_interval(request: Request, spec: Any, run_id: str) -> tuple[str, str]:
    """``(interval key, where it was read: "control plane" or "airflow")`` of run ``run_id``
    of ``spec``'s DAG; 404 naming the run when neither knows it."""
    from pipelines.errors import LockstepError
    from pipelines.matrix_page import interval_of_run

    key = interval_of_run(spec, run_id)
    if key is not None:
        return key, "control plane"
    try:
        key = _from_airflow(request, spec, run_id)
    except LockstepError as exc:  # a conf or date the pipeline has no interval for
        raise HTTPException(422, f"run {run_id!r}: {exc.message}") from None
    if key is None:
        raise HTTPException(404, f"no run {run_id!r} of {spec.name}: neither Airflow nor the control plane knows it, "
                                 "or it has no date")
    return key, "airflow"
