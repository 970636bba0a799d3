"""The embedded Airflow: a real Airflow 3 on this machine (metadata DB, api-server, scheduler,
dag-processor), supervised as processes.

:class:`EmbeddedAirflow` writes the configuration and the home, starts each component, waits
until all are healthy, keeps their logs and timings, and stops them; every REST call goes
through the :class:`~pipelines.airflow.client.AirflowClient` it hands out (``af.client``),
signed in as the home's admin. Nothing here imports Airflow: the components run as
``python -m airflow ...`` subprocesses::

    with EmbeddedAirflow(home, dags_folder=Path("dags")) as af:
        af.client.wait_for_dag("fraud_features")
        run_id = af.client.trigger("fraud_features", conf={"regions": ["eu-west"]})
        assert af.client.wait_for_run("fraud_features", run_id) == "success"

Every component starts in its own process group with its output in ``<home>/logs/``;
leaving the ``with`` block (normally, on an error or on Ctrl-C) stops all of them: SIGTERM
to each group and to every descendant, SIGKILL after a timeout. A harness killed hard
leaves ``<home>/lockstep-pids.json`` behind; the next start in the same home ends the
processes it lists (and only those still running an ``airflow`` command).

The components' environment is built from the caller's (``os.environ``, without its
``AIRFLOW*`` variables unless ``inherit_airflow_env``), then :func:`airflow_env`, then
``extra_env``: reading ``os.environ`` here is what hands the processes their environment.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Literal

from pipelines.airflow.client import AirflowClient, AirflowError
from pipelines.airflow.embedded.environment import (
    COMPONENTS,
    absolute_root,
    airflow_env,
    free_port,
    port_in_use,
)
from pipelines.airflow.embedded.fab import check_roles, fab_env, provision
from pipelines.airflow.embedded.processes import (
    PIDS_FILE,
    descendants,
    kill_stale,
    record_pids,
    signal_all,
    signal_group,
    tail,
)
from pipelines.airflow.secrets import ADMIN_USER, home_secrets

__all__ = ["EmbeddedAirflow"]


class EmbeddedAirflow:
    """Airflow 3 on this machine, supervised as processes: a context manager.

    Its REST calls go through :attr:`client`, which fails a wait at once when a component
    has exited.

    :param home: ``AIRFLOW_HOME``: config, SQLite DB, secrets, logs (``logs/<component>.log``)
    :param dags_folder: the folder the dag-processor parses
    :param port: api-server port on 127.0.0.1; a free one when ``None``
    :param sql_alchemy_conn: metadata DB URL; SQLite in ``home`` when ``None``
    :param components: which Airflow commands to run (``triggerer`` is optional)
    :param extra_env: more variables for the components, applied last
    :param inherit_airflow_env: keep the caller's ``AIRFLOW*`` variables (for keys this
        harness does not set); by default they are dropped, so a test's Airflow is defined
        by its arguments alone
    :param cwd: the components' working directory (default: ``home``); ``lockstep airflow
        up`` runs them in the project, where the CLI runs, so anything resolved against the
        working directory names the same place for both
    :param auth: ``"simple"`` (the simple auth manager, one admin) or ``"fab"`` (the FAB auth
        manager, users and roles in the metadata DB, created from ``users_file``:
        :mod:`~pipelines.airflow.embedded.fab`); :meth:`password_of` tells a user's password
    :param users_file: the FAB users file (YAML, :class:`~pipelines.spec.FabUsersFile`); the
        admin alone without one
    :param progress: told what the start-up is doing (``"migrating the metadata DB"``,
        ``"waiting for scheduler, dag_processor"``), each time that changes

    ``timings`` holds how long ``db migrate`` and the start-up took, in seconds.
    """

    def __init__(
        self,
        home: Path,
        *,
        dags_folder: Path,
        plugins_folder: Path | None = None,
        port: int | None = None,
        sql_alchemy_conn: str | None = None,
        components: Sequence[str] = COMPONENTS,
        parse_interval: int = 5,
        startup_timeout: float = 180.0,
        stop_timeout: float = 30.0,
        extra_env: Mapping[str, str] | None = None,
        inherit_airflow_env: bool = False,
        python: str = sys.executable,
        cwd: Path | None = None,
        auth: Literal["simple", "fab"] = "simple",
        users_file: Path | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.home = Path(home).resolve()
        self.dags_folder = Path(dags_folder).resolve()
        self.plugins_folder = Path(plugins_folder).resolve() if plugins_folder else None
        self.port = port or free_port()
        self.sql_alchemy_conn = sql_alchemy_conn
        self.components = tuple(components)
        self.parse_interval = parse_interval
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.extra_env = dict(extra_env or {})
        self.inherit_airflow_env = inherit_airflow_env
        self.python = python
        self.cwd = Path(cwd).resolve() if cwd else self.home
        self._progress = progress
        if auth not in ("simple", "fab"):
            raise AirflowError(f"auth must be 'simple' or 'fab', got {auth!r}")
        if users_file is not None and auth != "fab":
            raise AirflowError("a users file is for the FAB auth manager: start with auth='fab' (--auth fab)")
        self.auth = auth
        self.users_file = Path(users_file).resolve() if users_file else None
        self.passwords: dict[str, str] = {}
        self._phase = ""
        self.url = f"http://127.0.0.1:{self.port}"
        self.timings: dict[str, float] = {}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: dict[str, IO[bytes]] = {}
        self._client: AirflowClient | None = None
        self.env: dict[str, str] = {}

    # -- lifecycle -------------------------------------------------------------------

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def password(self) -> str:
        return home_secrets(self.home)["admin_password"]

    def password_of(self, user: str) -> str:
        """The password of ``user``: a FAB user of the users file, or the admin."""
        if user == ADMIN_USER:
            return self.password
        if user not in self.passwords:
            raise AirflowError(f"no user {user!r} in this Airflow's users file ({self.users_file or 'none'})")
        return self.passwords[user]

    def client_for(self, user: str) -> AirflowClient:
        """A REST client signed in as ``user`` (close it when done)."""
        return AirflowClient(self.url, user, self.password_of(user), check=self.check_alive)

    def __enter__(self) -> EmbeddedAirflow:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _report(self, phase: str) -> None:
        if self._progress is not None and phase != self._phase:
            self._phase = phase
            self._progress(phase)

    def start(self) -> None:
        """Migrate the metadata DB, start every component, wait until all report healthy."""
        if self.auth == "fab":  # a malformed users file is refused before anything is written
            check_roles(self.users_file, self.dags_folder)
        self.home.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        kill_stale(self.home)
        if port_in_use(self.port):
            raise AirflowError(f"port {self.port} on 127.0.0.1 is in use: choose another port")
        inherited = {
            k: v
            for k, v in os.environ.items()
            if self.inherit_airflow_env or not k.lstrip("_").startswith("AIRFLOW")
        }
        self.env = {
            **inherited,
            **airflow_env(
                self.home,
                port=self.port,
                dags_folder=self.dags_folder,
                plugins_folder=self.plugins_folder,
                sql_alchemy_conn=self.sql_alchemy_conn,
                parse_interval=self.parse_interval,
            ),
            **(fab_env() if self.auth == "fab" else {}),
            **self.extra_env,
        }
        self.env.update(absolute_root(self.env))
        self._write_env_file()
        try:
            t0 = time.monotonic()
            self._report("migrating the metadata DB")
            self._migrate()
            self.timings["db_migrate"] = time.monotonic() - t0
            if self.auth == "fab":
                t2 = time.monotonic()
                self._report("creating the FAB users and roles")
                self.passwords = provision(self.home, self.users_file, self.env, python=self.python,
                                           cwd=self.cwd, log=self.log_dir / "fab-users.log")
                self.timings["fab_users"] = time.monotonic() - t2
            t1 = time.monotonic()
            self._report(f"starting {', '.join(self.components)}")
            for component in self.components:
                self._spawn(component)
            self._wait_healthy()
            self._report("healthy")
            self.timings["startup"] = time.monotonic() - t1
        except BaseException:
            self.stop()
            raise

    @property
    def env_file(self) -> Path:
        return self.home / "airflow.env"

    def _write_env_file(self) -> None:
        """``<home>/airflow.env``: ``set -a; . <home>/airflow.env`` points the ``airflow`` CLI here."""
        import shlex

        names = sorted(k for k in self.env if k.lstrip("_").startswith("AIRFLOW"))
        lines = [f"{k}={shlex.quote(self.env[k])}" for k in names]
        fd = os.open(self.env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write("\n".join(lines) + "\n")

    def _airflow(self, *args: str) -> list[str]:
        return [self.python, "-m", "airflow", *args]

    def _migrate(self) -> None:
        log_path = self.log_dir / "db-migrate.log"
        with log_path.open("wb") as log:
            try:
                result = subprocess.run(
                    self._airflow("db", "migrate"),
                    env=self.env,
                    cwd=self.cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=600,
                    check=False,
                )
            except subprocess.TimeoutExpired as exc:
                raise AirflowError(f"airflow db migrate timed out; see {log_path}") from exc
        if result.returncode != 0:
            raise AirflowError(
                f"airflow db migrate failed (exit {result.returncode}); see {log_path}:\n"
                + tail(log_path),
                log=str(log_path),
            )

    def _spawn(self, component: str) -> None:
        args = [component]
        if component == "api-server":
            args += ["--host", "127.0.0.1", "--port", str(self.port)]
        log = (self.log_dir / f"{component}.log").open("ab")
        self._logs[component] = log
        self.procs[component] = subprocess.Popen(
            self._airflow(*args),
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() signals the whole group
        )
        record_pids(self.home, self.procs)

    @property
    def client(self) -> AirflowClient:
        """The REST API v2 client, signed in as the home's admin."""
        if self._client is None:
            self._client = AirflowClient(self.url, ADMIN_USER, self.password, check=self.check_alive)
        return self._client

    def check_alive(self) -> None:
        """Raise :class:`AirflowError` (with the tail of its log) when a component has exited."""
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                log = self.log_dir / f"{name}.log"
                raise AirflowError(
                    f"airflow {name} exited with code {proc.returncode}; see {log}:\n{tail(log)}",
                    component=name,
                )

    def _wait_healthy(self) -> None:
        import httpx

        wanted = {
            "scheduler": "scheduler",
            "dag-processor": "dag_processor",
            "triggerer": "triggerer",
        }
        needed = [wanted[c] for c in self.components if c in wanted]
        deadline = time.monotonic() + self.startup_timeout
        last: object = "no answer"
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                health = self.client.health()
                last = health
                waiting = [key for key in ("metadatabase", *needed)
                           if (health.get(key) or {}).get("status") != "healthy"]
                if not waiting:
                    return
                self._report(f"waiting for {', '.join(waiting)}")
            except httpx.HTTPError as exc:
                last = exc
                self._report("waiting for the api-server")
            time.sleep(0.5)
        raise AirflowError(
            f"Airflow not healthy after {self.startup_timeout:.0f}s (last: {last}); logs in {self.log_dir}",
            retryable=True,
        )

    def stop(self) -> None:
        """Stop every component: SIGTERM to its group and descendants, SIGKILL after a timeout.

        The scheduler and dag-processor stop first, then the api-server (running tasks
        report to it while they shut down). Safe to call twice.
        """

        if self._client is not None:
            self._client.close()
            self._client = None
        for batch in ([c for c in self.procs if c != "api-server"], ["api-server"]):
            procs = {c: self.procs[c] for c in batch if c in self.procs}
            if not procs:
                continue
            t0 = time.monotonic()
            family: list[Any] = []
            for proc in procs.values():
                family += descendants(proc.pid)
            for proc in procs.values():
                signal_group(proc.pid, signal.SIGTERM)
            signal_all(family, signal.SIGTERM)
            deadline = time.monotonic() + self.stop_timeout
            for proc in procs.values():
                try:
                    proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    pass
            alive = _still_alive(family, deadline)
            for proc in procs.values():
                signal_group(proc.pid, signal.SIGKILL)
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(timeout=10)
            signal_all(alive, signal.SIGKILL)
            for name in procs:
                del self.procs[name]
            self.timings[f"stop {'+'.join(procs)}"] = time.monotonic() - t0
        for log in self._logs.values():
            log.close()
        self._logs.clear()
        (self.home / PIDS_FILE).unlink(missing_ok=True)


def _still_alive(family: list[Any], deadline: float) -> list[Any]:
    """The processes of ``family`` still running at ``deadline``. One that exits (or whose pid
    is gone, reaped by its own parent, while it is waited on) counts as stopped: psutil's
    ``wait_procs`` raises on that race instead (``pidfd_open``: no such process)."""
    import psutil

    alive = []
    for proc in family:
        try:
            proc.wait(timeout=max(0.05, deadline - time.monotonic()))
        except psutil.TimeoutExpired:
            alive.append(proc)
        except (psutil.NoSuchProcess, ChildProcessError, ProcessLookupError, FileNotFoundError):
            pass
    return alive

