"""The one client for Airflow 3's REST API v2, for a running Airflow (embedded or not).

Every REST call Lockstep makes goes through :class:`AirflowClient`: the CLI's
``--via airflow`` backfill and landing notifications, the embedded Airflow's health checks,
and the integration tests' triggers, waits and reads. Credentials come from the settings
(``LOCKSTEP_AIRFLOW_USERNAME`` / ``LOCKSTEP_AIRFLOW_PASSWORD``, :mod:`pipelines.spec.settings`)
or the caller, never from code. Logs in through the auth manager (``POST /auth/token``) and
retries once with a fresh token on a 401::

    client = AirflowClient("http://127.0.0.1:8080", "admin", password)
    run_id = client.trigger("fraud_features", conf={"regions": ["eu-west"]})
    assert client.wait_for_run("fraud_features", run_id) == "success"
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from typing import Any, TypeVar
from urllib.parse import quote

from pipelines.errors import LockstepError

__all__ = ["TERMINAL_RUN_STATES", "AirflowClient", "AirflowError"]

#: the states a DAG run ends in
TERMINAL_RUN_STATES = frozenset({"success", "failed"})

T = TypeVar("T")


class AirflowError(LockstepError):
    """Airflow did not answer as expected (a failed login, a refused call, a timeout)."""

    retryable = True


def _iso(value: datetime | date | str) -> str:
    """A timestamp for the REST API; a day is its midnight UTC (a backfill run with logical
    date D processes [D, D + 1): both ends of a range of days are included)."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return f"{value.isoformat()}T00:00:00Z"
    return value


def _path(*segments: object) -> str:
    """An API path of ``segments``, each percent-encoded whole: a run id holds ``+`` and
    ``:`` (``manual__2026-01-02T00:00:00+00:00``), and may hold ``/``, ``?`` or ``#``."""
    return "/" + "/".join(quote(str(s), safe="") for s in segments)


class AirflowClient:
    """REST API v2 of the Airflow at ``base_url``, signed in as ``username``.

    :param check: called before every poll of a wait (:meth:`wait_for`); it raises when what
        the client waits on can no longer answer (the embedded Airflow passes its check that
        every component is alive, so a wait fails at once, with the component's log)
    """

    def __init__(self, base_url: str, username: str, password: str, *, timeout: float = 30,
                 check: Callable[[], None] | None = None) -> None:
        import httpx

        self.base_url = base_url.rstrip("/")
        self.username = username
        self._password: str | None = password
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout)
        self._token: str | None = None
        self._check = check

    @classmethod
    def from_env(cls, base_url: str) -> AirflowClient:
        """A client signed in with the settings' ``LOCKSTEP_AIRFLOW_USERNAME`` / ``_PASSWORD``."""
        from pipelines.spec.settings import settings

        found = settings()
        user = found.airflow_username
        password = found.airflow_password.get_secret_value() if found.airflow_password else None
        if not user or not password:
            raise AirflowError(
                "set LOCKSTEP_AIRFLOW_USERNAME and LOCKSTEP_AIRFLOW_PASSWORD to reach Airflow at "
                f"{base_url} (for `lockstep airflow up`, the login is printed at start-up)")
        return cls(base_url, user, password)

    def close(self) -> None:
        self._http.close()

    # -- auth and the raw call ---------------------------------------------------------
    def token(self, *, refresh: bool = False) -> str:
        """A JWT from the auth manager: ``POST /auth/token``."""
        if self._token is None or refresh:
            if self._password is None:
                raise AirflowError(f"the token given for {self.base_url} was refused (expired?): sign in again")
            try:
                response = self._http.post("/auth/token", json={"username": self.username, "password": self._password})
            except Exception as exc:  # httpx.ConnectError and friends
                raise AirflowError(f"cannot reach Airflow at {self.base_url}: {exc}") from None
            if response.status_code != 201:
                raise AirflowError(f"login to {self.base_url} failed: {response.status_code} {response.text[:500]}")
            self._token = str(response.json()["access_token"])
        return self._token

    def api(self, method: str, path: str, json: Any = None, *, params: Mapping[str, Any] | None = None,
            ok: Iterable[int] = (200, 201, 204)) -> Any:
        """Call ``/api/v2<path>``; the decoded JSON (``None`` when empty).

        Raises :class:`AirflowError` (with ``status`` in its context) on any other status.
        """
        url = path if path.startswith("/api/") else f"/api/v2{path}"
        response = self._send(method, url, json, params)
        if response.status_code not in set(ok):
            raise AirflowError(f"{method} {url} -> {response.status_code}: {response.text[:2000]}",
                               status=response.status_code)
        return response.json() if response.content else None

    def _send(self, method: str, url: str, json: Any, params: Mapping[str, Any] | None) -> Any:
        """One call with the bearer token, once more with a fresh token on a 401 (signed in by
        password; a client holding a caller's token cannot refresh it)."""
        for attempt in (1, 2):
            response = self._http.request(method, url, json=json, params=params,
                                          headers={"Authorization": f"Bearer {self.token(refresh=attempt == 2)}"})
            if response.status_code != 401 or self._password is None:
                break
        return response

    @classmethod
    def with_token(cls, base_url: str, token: str) -> AirflowClient:
        """A client acting with a token the auth manager issued to someone else (the plugin's
        routes call Airflow's API as the user who called them, never as a service account)."""
        client = cls(base_url, "", "")
        client._password = None
        client._token = token
        return client

    # -- the Lockstep plugin's API (/lockstep/api) ---------------------------------------
    def lockstep(self, method: str, path: str, json: Any = None, *, params: Mapping[str, Any] | None = None) -> Any:
        """Call the Lockstep plugin's ``/lockstep/api<path>``; a refusal is one line naming why
        (the route's ``detail``) and the status (``status`` in the error's context)."""
        url = f"/lockstep/api{path}"
        try:
            response = self._send(method, url, json, params)
        except AirflowError:
            raise
        except Exception as exc:  # httpx.ConnectError and friends
            raise AirflowError(f"cannot reach Airflow at {self.base_url}: {exc}") from None
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise AirflowError(f"Airflow refused {method} {url} ({response.status_code}): {str(detail)[:1000]}",
                               status=response.status_code, retryable=False)
        return response.json() if response.content else None

    def request_decision(self, pipeline: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Request an override or a rollback (``body``: action, reason, interval and generation,
        or to); the pending request."""
        return dict(self.lockstep("POST", f"/pipelines/{pipeline}/requests", dict(body)))

    def approve_request(self, pipeline: str, request_id: str, *, reason: str, reject: bool = False
                        ) -> dict[str, Any]:
        """Approve (or reject) a request; the request, with the decision when it completed it."""
        return dict(self.lockstep("POST", f"/pipelines/{pipeline}/requests/{request_id}/approve",
                                  {"reason": reason, "reject": reject}))

    def decision_requests(self, pipeline: str) -> list[dict[str, Any]]:
        """The pipeline's requests the signed-in user may see."""
        return list(self.lockstep("GET", f"/pipelines/{pipeline}/requests"))

    def rerun_region(self, pipeline: str, region: str, interval: str) -> dict[str, Any]:
        """Re-run one region's interval through Airflow: its run's tasks of the region cleared
        (``"action": "cleared"``), or a new run of the interval when it has none (``"triggered"``)."""
        return dict(self.lockstep("POST", f"/pipelines/{pipeline}/regions/{region}/intervals/{interval}/run"))

    def health(self) -> dict[str, Any]:
        """``GET /api/v2/monitor/health`` (needs no token); raises ``httpx.HTTPError`` while
        the api-server does not answer."""
        response = self._http.get("/api/v2/monitor/health", timeout=5)
        response.raise_for_status()
        return dict(response.json())

    # -- waiting -----------------------------------------------------------------------
    def wait_for(self, probe: Callable[[], T | None], *, timeout: float, what: str, poll: float = 1.0) -> T:
        """Call ``probe`` until it returns something other than ``None``; fail after ``timeout``.

        An answer that does not come within the client's timeout (a busy api-server) is "not
        yet", asked again until the deadline, which names it; any other error, and a component
        that died (the client's ``check``), fails the wait at once."""
        import httpx

        deadline = time.monotonic() + timeout
        late = ""
        while True:
            if self._check is not None:
                self._check()
            try:
                value = probe()
            except httpx.TimeoutException as exc:
                value, late = None, f"; the last request timed out ({type(exc).__name__})"
            if value is not None:
                return value
            if time.monotonic() > deadline:
                raise AirflowError(f"timed out after {timeout:.0f}s waiting for {what}{late}")
            time.sleep(poll)

    # -- DAGs and their runs -----------------------------------------------------------
    def import_errors(self) -> list[dict[str, Any]]:
        return list(self.api("GET", "/importErrors")["import_errors"])

    def wait_for_dag(self, dag_id: str, timeout: float = 120.0, *, fail_on_import_errors: bool = True
                     ) -> dict[str, Any]:
        """Wait until the dag-processor has parsed ``dag_id``; its ``GET /dags/{dag_id}``.

        Fails at once when a file has an import error (with its traceback).
        """

        def probe() -> dict[str, Any] | None:
            try:
                return dict(self.api("GET", _path("dags", dag_id)))
            except AirflowError as exc:
                if exc.context.get("status") != 404:
                    raise
            if fail_on_import_errors and (errors := self.import_errors()):
                details = "\n".join(f"{e['filename']}:\n{e['stack_trace']}" for e in errors)
                raise AirflowError(f"DAG files failed to import:\n{details}")
            return None

        return self.wait_for(probe, timeout=timeout, what=f"DAG {dag_id!r} to be parsed")

    def dag(self, dag_id: str) -> dict[str, Any]:
        """``GET /dags/{dag_id}``."""
        return dict(self.api("GET", _path("dags", dag_id)))

    def set_paused(self, dag_id: str, paused: bool) -> dict[str, Any]:
        """``PATCH /dags/{dag_id}`` with ``is_paused``."""
        return dict(self.api("PATCH", _path("dags", dag_id), {"is_paused": paused}))

    def trigger(self, dag_id: str, logical_date: datetime | str | None = None,
                conf: Mapping[str, Any] | None = None, *, run_id: str | None = None,
                partition_key: str | None = None) -> str:
        """``POST /dags/{dag_id}/dagRuns``; the new run's id.

        ``logical_date`` must be timezone-aware; ``None`` makes a run without one (the
        body field is required in Airflow 3, nullable).
        """
        if isinstance(logical_date, datetime):
            if logical_date.tzinfo is None:
                raise AirflowError("logical_date must be timezone-aware")
            logical_date = logical_date.isoformat()
        body: dict[str, Any] = {"logical_date": logical_date, "conf": dict(conf or {})}
        if run_id:
            body["dag_run_id"] = run_id
        if partition_key:
            body["partition_key"] = partition_key
        return str(self.api("POST", _path("dags", dag_id, "dagRuns"), body)["dag_run_id"])

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return dict(self.api("GET", _path("dags", dag_id, "dagRuns", run_id)))

    def dag_runs(self, dag_id: str, **params: Any) -> list[dict[str, Any]]:
        """``GET /dags/{dag_id}/dagRuns`` (filters as query parameters, e.g. ``run_type``)."""
        params = {"order_by": "id", "limit": 100, **params}
        return list(self.api("GET", _path("dags", dag_id, "dagRuns"), params=params)["dag_runs"])

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 300.0, *, poll: float = 1.0) -> str:
        """Poll the run until it is ``success`` or ``failed``; that state.

        On a timeout the error lists every task's state, and the logs of failed tasks.
        """

        def probe() -> str | None:
            state = str(self.dag_run(dag_id, run_id)["state"])
            return state if state in TERMINAL_RUN_STATES else None

        try:
            return self.wait_for(probe, timeout=timeout, poll=poll, what=f"run {run_id!r} of {dag_id!r}")
        except AirflowError as exc:
            raise AirflowError(f"{exc}\n{self.describe_run(dag_id, run_id)}") from exc

    def wait_for_dag_run(self, dag_id: str, *, timeout: float = 300.0, finished: bool = True, **params: Any
                         ) -> dict[str, Any]:
        """The first run of ``dag_id`` matching ``params`` (e.g. ``run_type="asset_triggered"``).

        With ``finished`` it waits until that run is ``success`` or ``failed`` too.
        """

        def probe() -> dict[str, Any] | None:
            runs = self.dag_runs(dag_id, **params)
            if not runs or (finished and runs[0]["state"] not in TERMINAL_RUN_STATES):
                return None
            return runs[0]

        return self.wait_for(probe, timeout=timeout, what=f"a run of {dag_id!r} matching {params}")

    # -- task instances ----------------------------------------------------------------
    def clear_tasks(self, dag_id: str, run_id: str, task_ids: Iterable[str | tuple[str, int]], *,
                    include_downstream: bool = True, note: str | None = None) -> list[dict[str, Any]]:
        """``POST /dags/{dag_id}/clearTaskInstances`` for one run: its ``task_ids`` (a task id, or
        a mapped task's ``(task id, map index)``) and, with ``include_downstream``, what depends
        on them, whatever their state; the run goes back to queued. The task instances cleared."""
        body: dict[str, Any] = {
            "dry_run": False, "dag_run_id": run_id, "only_failed": False, "reset_dag_runs": True,
            "include_downstream": include_downstream,
            "task_ids": [list(t) if isinstance(t, tuple) else t for t in task_ids]}
        if note:
            body["note"] = note
        return list(self.api("POST", _path("dags", dag_id, "clearTaskInstances"), body)["task_instances"])

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        path = _path("dags", dag_id, "dagRuns", run_id, "taskInstances")
        return list(self.api("GET", path, params={"limit": 1000})["task_instances"])

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1, map_index: int = -1) -> str:
        """A task attempt's log as text (``.../taskInstances/{task_id}/logs/{try_number}``; a
        mapped task's instance by ``map_index``)."""
        path = _path("dags", dag_id, "dagRuns", run_id, "taskInstances", task_id, "logs", try_number)
        content = self.api("GET", path, params={"full_content": "true", "map_index": map_index}).get("content", [])
        lines = []
        for item in content:
            if isinstance(item, dict):
                extra = {k: v for k, v in item.items() if k not in {"event", "timestamp", "level"}}
                lines.append(f"{item.get('timestamp', '')} {item.get('level', '')} {item.get('event', '')}"
                             + (f" {extra}" if extra else ""))
            else:
                lines.append(str(item))
        return "\n".join(lines)

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        path = _path("dags", dag_id, "dagRuns", run_id, "taskInstances", task_id, "xcomEntries", key)
        return self.api("GET", path, params={"deserialize": "true"})["value"]

    def describe_run(self, dag_id: str, run_id: str) -> str:
        """Task states of a run, with the log tail of every failed task: for error messages."""
        lines = []
        for ti in self.task_instances(dag_id, run_id):
            lines.append(f"  {ti['task_id']}[{ti.get('map_index', -1)}]: {ti['state']}")
            if ti["state"] in {"failed", "upstream_failed", "up_for_retry"} and ti.get("try_number"):
                try:
                    log = self.task_log(dag_id, run_id, ti["task_id"], ti["try_number"], ti.get("map_index", -1))
                    lines.append("    " + "\n    ".join(log.splitlines()[-30:]))
                except AirflowError:
                    pass
        return "\n".join(lines)

    # -- assets ------------------------------------------------------------------------
    def assets(self, **params: Any) -> list[dict[str, Any]]:
        """``GET /assets`` (e.g. ``uri_pattern=...``, ``dag_ids=...``)."""
        return list(self.api("GET", "/assets", params={"limit": 100, **params})["assets"])

    def asset_events(self, **params: Any) -> list[dict[str, Any]]:
        """``GET /assets/events`` (filters: ``asset_id``, ``source_dag_id``, ``source_run_id``, …)."""
        params = {"limit": 100, "order_by": "timestamp", **params}
        return list(self.api("GET", "/assets/events", params=params)["asset_events"])

    def upstream_asset_events(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """The asset events that triggered an asset-triggered run."""
        path = _path("dags", dag_id, "dagRuns", run_id, "upstreamAssetEvents")
        return list(self.api("GET", path)["asset_events"])

    # -- backfills ---------------------------------------------------------------------
    def backfill(self, dag_id: str, from_date: datetime | date | str, to_date: datetime | date | str, *,
                 reprocess_behavior: str = "none", max_active_runs: int = 10, run_backwards: bool = False,
                 dag_run_conf: Mapping[str, Any] | None = None, dry_run: bool = False) -> dict[str, Any]:
        """``POST /backfills`` (or ``/backfills/dry_run``): runs for every interval in the range.

        The DAG needs a periodic schedule; ``reprocess_behavior`` is ``none``, ``failed``
        or ``completed`` (what to do with intervals that already have a run). A day (a
        :class:`~datetime.date`) stands for the run whose logical date is its midnight UTC.
        """
        body = {"dag_id": dag_id, "from_date": _iso(from_date), "to_date": _iso(to_date),
                "run_backwards": run_backwards, "dag_run_conf": dict(dag_run_conf or {}),
                "reprocess_behavior": reprocess_behavior, "max_active_runs": max_active_runs}
        return dict(self.api("POST", "/backfills/dry_run" if dry_run else "/backfills", body))

    def backfill_state(self, backfill_id: int | str) -> dict[str, Any]:
        """``GET /backfills/{backfill_id}`` (``completed_at`` is set once it has finished)."""
        return dict(self.api("GET", f"/backfills/{backfill_id}"))

    # -- landing notifications ---------------------------------------------------------
    def landing_asset_id(self, pipeline: str) -> int:
        """The id of ``lockstep://<pipeline>/landing`` (known once its DAG was parsed)."""
        uri = f"lockstep://{pipeline}/landing"
        found = [a for a in self.assets(uri_pattern=uri) if a["uri"] == uri]
        if not found:
            raise AirflowError(f"{pipeline}: Airflow knows no asset {uri}: is the pipeline's trigger `landing` "
                               "and its DAG file parsed?")
        return int(found[0]["id"])

    def notify_landing(self, pipeline: str, intervals: list[str] | None = None, *, asset_id: int | None = None
                       ) -> dict[str, Any]:
        """``POST /assets/events`` on the pipeline's landing asset: files were delivered (for
        ``intervals``, when given; else the landing DAG looks back ``airflow.landing_lookback``)."""
        body = {"asset_id": asset_id if asset_id is not None else self.landing_asset_id(pipeline),
                "extra": {"intervals": list(intervals or [])}}
        return dict(self.api("POST", "/assets/events", body))
