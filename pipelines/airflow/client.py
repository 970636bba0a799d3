"""A small client for Airflow 3's REST API v2, for a running Airflow (embedded or not).

Credentials come from the environment (``LOCKSTEP_AIRFLOW_USERNAME`` /
``LOCKSTEP_AIRFLOW_PASSWORD``) or the caller, never from code. Logs in through the auth
manager (``POST /auth/token``) and retries once with a fresh token on a 401.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from pipelines.errors import LockstepError


class AirflowError(LockstepError):
    """Airflow did not answer as expected (a failed login, a refused call, a timeout)."""

    retryable = True


class AirflowClient:
    def __init__(self, base_url: str, username: str, password: str, *, timeout: float = 30) -> None:
        import httpx

        self.base_url = base_url.rstrip("/")
        self.username = username
        self._password = password
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout)
        self._token: str | None = None

    @classmethod
    def from_env(cls, base_url: str) -> AirflowClient:
        user, password = os.environ.get("LOCKSTEP_AIRFLOW_USERNAME"), os.environ.get("LOCKSTEP_AIRFLOW_PASSWORD")
        if not user or not password:
            raise AirflowError(
                "set LOCKSTEP_AIRFLOW_USERNAME and LOCKSTEP_AIRFLOW_PASSWORD to reach Airflow at "
                f"{base_url} (for `lockstep airflow up`, the login is printed at start-up)")
        return cls(base_url, user, password)

    def token(self, *, refresh: bool = False) -> str:
        """A JWT from the auth manager: ``POST /auth/token``."""
        if self._token is None or refresh:
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
        """Call ``/api/v2<path>``; the decoded JSON (``None`` when empty)."""
        url = path if path.startswith("/api/") else f"/api/v2{path}"
        for attempt in (1, 2):
            response = self._http.request(method, url, json=json, params=params,
                                          headers={"Authorization": f"Bearer {self.token(refresh=attempt == 2)}"})
            if response.status_code != 401:
                break
        if response.status_code not in set(ok):
            raise AirflowError(f"{method} {url} -> {response.status_code}: {response.text[:2000]}",
                               status=response.status_code)
        return response.json() if response.content else None

    # -- backfills -------------------------------------------------------------------
    def _backfill_body(self, dag_id: str, start: str, end: str) -> dict[str, Any]:
        # a backfill run with logical date D processes [D, D + 1): both ends included
        return {"dag_id": dag_id, "from_date": f"{start}T00:00:00Z", "to_date": f"{end}T00:00:00Z",
                "run_backwards": False, "dag_run_conf": {}, "reprocess_behavior": "failed", "max_active_runs": 1}

    def backfill_dry_run(self, dag_id: str, start: str, end: str) -> dict[str, Any]:
        return dict(self.api("POST", "/backfills/dry_run", self._backfill_body(dag_id, start, end)))

    def create_backfill(self, dag_id: str, start: str, end: str) -> dict[str, Any]:
        """``POST /backfills``: one run per interval without a successful run yet."""
        return dict(self.api("POST", "/backfills", self._backfill_body(dag_id, start, end)))

    # -- landing notifications ----------------------------------------------------------
    def landing_asset_id(self, pipeline: str) -> int:
        """The id of ``lockstep://<pipeline>/landing`` (known once its DAG was parsed)."""
        uri = f"lockstep://{pipeline}/landing"
        found = [a for a in self.api("GET", "/assets", params={"uri_pattern": uri, "limit": 100})["assets"]
                 if a["uri"] == uri]
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
