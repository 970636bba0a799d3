"""A real Airflow 3 on this machine: metadata DB, api-server, scheduler, dag-processor.

``lockstep airflow up`` (``make up``) and the integration tests both use it. Nothing here
imports Airflow: the components run as ``python -m airflow ...`` subprocesses with an
environment built by :func:`airflow_env`, and everything else talks to them over HTTP,
through the public REST API v2, exactly as a user or a CI job would::

    with EmbeddedAirflow(home, dags_folder=Path("dags")) as af:
        af.wait_for_dag("fraud_features")
        run_id = af.trigger("fraud_features", conf={"regions": ["eu-west"]})
        assert af.wait_for_run("fraud_features", run_id) == "success"

Every component starts in its own process group with its output in ``<home>/logs/``;
leaving the ``with`` block (normally, on an error or on Ctrl-C) stops all of them: SIGTERM
to each group and to every descendant, SIGKILL after a timeout. A harness killed hard
leaves ``<home>/lockstep-pids.json`` behind; the next start in the same home ends the
processes it lists (and only those still running an ``airflow`` command).

The metadata DB is SQLite in ``<home>/airflow.db`` unless a SQLAlchemy URL is given;
for PostgreSQL (``postgresql+psycopg2://postgres@127.0.0.1:5432/<db>``) Airflow needs
``psycopg2-binary`` for the sync engine and ``asyncpg`` for its async engine, both in the
``postgres`` extra. :func:`create_database` makes a fresh database for a test.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from base64 import urlsafe_b64encode
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

from pipelines.airflow.client import AirflowClient, AirflowError

if TYPE_CHECKING:
    import httpx

__all__ = [
    "ADMIN_USER",
    "absolute_root",
    "DEFAULT_PORT",
    "AirflowError",
    "EmbeddedAirflow",
    "airflow_env",
    "check_postgres",
    "create_database",
    "drop_database",
    "free_port",
    "home_secrets",
    "up",
]

DEFAULT_PORT = 8080
ADMIN_USER = "admin"
#: the components a local deployment needs; ``triggerer`` only for deferrable operators
COMPONENTS = ("api-server", "scheduler", "dag-processor")
TERMINAL_RUN_STATES = frozenset({"success", "failed"})
#: where :func:`create_database` connects to create and drop databases
DEFAULT_POSTGRES_ADMIN_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"

_SECRETS_FILE = "lockstep-secrets.json"
_PIDS_FILE = "lockstep-pids.json"
_PASSWORDS_FILE = "simple_auth_manager_passwords.json.generated"

T = TypeVar("T")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nothing listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, port)) == 0


def home_secrets(home: Path) -> dict[str, str]:
    """The secrets of one Airflow home, generated on first use and kept in the home (mode 0600).

    Every component must share the JWT secret (the scheduler signs task tokens that the
    api-server verifies), so it cannot be left for each process to generate. Nothing
    secret is committed: a new home gets new values.
    """
    path = Path(home) / _SECRETS_FILE
    if path.exists():
        return dict(json.loads(path.read_text()))
    values = {
        "jwt_secret": secrets.token_urlsafe(32),
        "api_secret_key": secrets.token_urlsafe(32),
        # the format cryptography.fernet.Fernet.generate_key() produces
        "fernet_key": urlsafe_b64encode(os.urandom(32)).decode(),
        "admin_password": secrets.token_urlsafe(12),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(values, fh)
    return values


def airflow_env(
    home: Path,
    *,
    port: int,
    dags_folder: Path,
    plugins_folder: Path | None = None,
    sql_alchemy_conn: str | None = None,
    log_server_ports: tuple[int, int] | None = None,
    parallelism: int | None = None,
    parse_interval: int = 5,
) -> dict[str, str]:
    """The ``AIRFLOW_HOME`` and ``AIRFLOW__SECTION__KEY`` variables of an embedded Airflow.

    LocalExecutor; SQLite in ``<home>/airflow.db`` unless ``sql_alchemy_conn`` is given;
    api-server on ``127.0.0.1:<port>``; the simple auth manager with one admin whose
    password is in :func:`home_secrets`; new DAGs unpaused; files re-listed and re-parsed
    every ``parse_interval`` seconds. ``log_server_ports`` (worker, triggerer) default to
    free ports, so two embedded Airflows, or one next to a real one, do not collide.

    >>> env = airflow_env(Path("/tmp/af"), port=8081, dags_folder=Path("dags"))
    >>> env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]
    'http://127.0.0.1:8081/execution/'
    """
    home = Path(home).resolve()
    home.mkdir(parents=True, exist_ok=True)
    keys = home_secrets(home)
    _write_passwords_file(home, keys["admin_password"])
    if sql_alchemy_conn is None:
        sql_alchemy_conn = f"sqlite:///{home / 'airflow.db'}"
    worker_log_port, trigger_log_port = log_server_ports or (free_port(), free_port())
    if parallelism is None:
        parallelism = max(2, min(8, 2 * (os.cpu_count() or 1)))
    base = f"http://127.0.0.1:{port}"
    env = {
        "AIRFLOW_HOME": str(home),
        # [core]
        "AIRFLOW__CORE__DAGS_FOLDER": str(Path(dags_folder).resolve()),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(
            Path(plugins_folder).resolve() if plugins_folder else home / "plugins"
        ),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__PARALLELISM": str(parallelism),
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(parallelism),
        "AIRFLOW__CORE__FERNET_KEY": keys["fernet_key"],
        # tasks reach the Execution API here; the default is http://localhost:8080/execution/
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base}/execution/",
        "AIRFLOW__CORE__AUTH_MANAGER": (
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / _PASSWORDS_FILE),
        # [database]
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sql_alchemy_conn,
        # [api]
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__SECRET_KEY": keys["api_secret_key"],
        "AIRFLOW__API__EXPOSE_CONFIG": "True",
        # [api_auth]: one secret for every component
        "AIRFLOW__API_AUTH__JWT_SECRET": keys["jwt_secret"],
        # [logging]
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(worker_log_port),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(trigger_log_port),
        # [dag_processor]: list the folder and re-parse changed files quickly
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": str(parse_interval),
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": str(parse_interval),
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_STORAGE_PATH": str(home / "dag_bundles"),
        # [scheduler]
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        "AIRFLOW__SCHEDULER__CATCHUP_BY_DEFAULT": "False",
    }
    return env


def absolute_root(env: Mapping[str, str], cwd: Path | None = None) -> dict[str, str]:
    """``LOCKSTEP_ROOT`` made absolute against ``cwd`` (the caller's directory), when it is a
    relative local path: the components run in the Airflow home, where a relative root would
    name another folder than the one the CLI reads (``lockstep airflow up --root data`` and
    ``lockstep status --root data`` must agree).

    >>> absolute_root({"LOCKSTEP_ROOT": "data"}, Path("/srv/project"))
    {'LOCKSTEP_ROOT': '/srv/project/data'}
    >>> absolute_root({"LOCKSTEP_ROOT": "s3://lake/lockstep"})
    {}
    """
    root = env.get("LOCKSTEP_ROOT")
    if not root or "://" in root or os.path.isabs(os.path.expanduser(root)):
        return {}
    return {"LOCKSTEP_ROOT": os.path.normpath(Path(cwd or Path.cwd()) / Path(root).expanduser())}


def _write_passwords_file(home: Path, password: str) -> None:
    """Seed the simple auth manager's passwords file, so the admin password is known.

    The manager only generates passwords for users missing from this file
    (``SimpleAuthManager.init`` in Airflow 3.3).
    """
    path = home / _PASSWORDS_FILE
    current: dict[str, str] = {}
    if path.exists() and path.read_text().strip():
        current = json.loads(path.read_text())
    if current.get(ADMIN_USER) != password:
        current[ADMIN_USER] = password
        path.write_text(json.dumps(current) + "\n")
        path.chmod(0o600)


# --------------------------------------------------------------------------- PostgreSQL


def _pg_url(url: str) -> Any:
    from sqlalchemy.engine import make_url

    return make_url(url)


def _pg_connect(admin_url: str, timeout: float = 3.0) -> Any:
    from pipelines.errors import require

    psycopg2 = require("psycopg2", "postgres")
    url = _pg_url(admin_url)
    return psycopg2.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 5432,
        user=url.username or "postgres",
        password=url.password,
        dbname=url.database or "postgres",
        connect_timeout=max(1, int(timeout)),
    )


def check_postgres(admin_url: str = DEFAULT_POSTGRES_ADMIN_URL) -> str | None:
    """Why PostgreSQL cannot hold an Airflow metadata DB here, or ``None`` when it can.

    Checks the drivers Airflow needs (psycopg2, asyncpg) and that the server accepts a
    connection.
    """
    import importlib.util

    for module in ("psycopg2", "asyncpg"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed: pip install 'lockstep[postgres]'"
    try:
        _pg_connect(admin_url).close()
    except Exception as exc:  # any failure means "not usable"
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"cannot connect to {_pg_url(admin_url).render_as_string(hide_password=True)}: {first_line}"
    return None


def _pg_execute(admin_url: str, sql: str) -> None:
    """Run one statement outside a transaction (CREATE/DROP DATABASE need that)."""
    conn = _pg_connect(admin_url)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


def create_database(name: str | None = None, admin_url: str = DEFAULT_POSTGRES_ADMIN_URL) -> str:
    """Create an empty database on the server of ``admin_url``; return its SQLAlchemy URL.

    >>> url = create_database()  # doctest: +SKIP
    'postgresql+psycopg2://postgres@127.0.0.1:5432/lockstep_af_3f2a…'
    """
    name = name or f"lockstep_af_{uuid.uuid4().hex[:12]}"
    if not name.replace("_", "").isalnum():
        raise AirflowError(f"invalid database name {name!r}: use letters, digits and _")
    _pg_execute(admin_url, f'CREATE DATABASE "{name}"')
    url = _pg_url(admin_url).set(drivername="postgresql+psycopg2", database=name)
    return str(url.render_as_string(hide_password=False))


def drop_database(url_or_name: str, admin_url: str = DEFAULT_POSTGRES_ADMIN_URL) -> None:
    """Drop a database made by :func:`create_database`, closing its open connections."""
    name = _pg_url(url_or_name).database if "://" in url_or_name else url_or_name
    if not name or not name.replace("_", "").isalnum():
        raise AirflowError(f"invalid database name {name!r}")
    _pg_execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --------------------------------------------------------------------------- processes


def _descendants(pid: int) -> list[Any]:
    import psutil

    try:
        return list(psutil.Process(pid).children(recursive=True))
    except psutil.Error:
        return []


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _signal_all(procs: Iterable[Any], sig: int) -> None:
    import psutil

    for proc in procs:
        try:
            proc.send_signal(sig)
        except psutil.Error:
            pass


def _kill_stale(home: Path) -> list[int]:
    """End the processes a harness killed hard left behind in ``home`` (from its pid file)."""
    import psutil

    path = home / _PIDS_FILE
    if not path.exists():
        return []
    ended: list[int] = []
    try:
        recorded = json.loads(path.read_text())
    except ValueError:
        recorded = {}
    for pid, create_time in recorded.values():
        try:
            proc = psutil.Process(pid)
            same = abs(proc.create_time() - create_time) < 1.0
            if not same or "airflow" not in " ".join(proc.cmdline()):
                continue
            family = [proc, *proc.children(recursive=True)]
        except psutil.Error:
            continue
        _signal_all(family, signal.SIGTERM)
        _, alive = psutil.wait_procs(family, timeout=10)
        _signal_all(alive, signal.SIGKILL)
        ended.append(pid)
    path.unlink(missing_ok=True)
    return ended


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


# --------------------------------------------------------------------------- the harness


class EmbeddedAirflow:
    """Airflow 3 on this machine, driven over REST API v2: a context manager.

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
        self._phase = ""
        self.url = f"http://127.0.0.1:{self.port}"
        self.timings: dict[str, float] = {}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: dict[str, IO[bytes]] = {}
        self._client: httpx.Client | None = None
        self._rest: AirflowClient | None = None
        self.env: dict[str, str] = {}

    # -- lifecycle -------------------------------------------------------------------

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def password(self) -> str:
        return home_secrets(self.home)["admin_password"]

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
        self.home.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        _kill_stale(self.home)
        if _port_in_use(self.port):
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
            **self.extra_env,
        }
        self.env.update(absolute_root(self.env))
        self._write_env_file()
        try:
            t0 = time.monotonic()
            self._report("migrating the metadata DB")
            self._migrate()
            self.timings["db_migrate"] = time.monotonic() - t0
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
                + _tail(log_path),
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
        self._record_pids()

    def _record_pids(self) -> None:
        import psutil

        recorded = {}
        for name, proc in self.procs.items():
            try:
                recorded[name] = [proc.pid, psutil.Process(proc.pid).create_time()]
            except psutil.Error:
                continue
        (self.home / _PIDS_FILE).write_text(json.dumps(recorded))

    def _check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                log = self.log_dir / f"{name}.log"
                raise AirflowError(
                    f"airflow {name} exited with code {proc.returncode}; see {log}:\n{_tail(log)}",
                    component=name,
                )

    def health(self) -> dict[str, Any]:
        """``GET /api/v2/monitor/health`` (needs no token)."""
        response = self.client.get("/api/v2/monitor/health", timeout=5)
        response.raise_for_status()
        return dict(response.json())

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
            self._check_alive()
            try:
                health = self.health()
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
        import psutil

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
                family += _descendants(proc.pid)
            for proc in procs.values():
                _signal_group(proc.pid, signal.SIGTERM)
            _signal_all(family, signal.SIGTERM)
            deadline = time.monotonic() + self.stop_timeout
            for proc in procs.values():
                try:
                    proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    pass
            _, alive = psutil.wait_procs(family, timeout=max(0.1, deadline - time.monotonic()))
            for proc in procs.values():
                _signal_group(proc.pid, signal.SIGKILL)
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(timeout=10)
            _signal_all(alive, signal.SIGKILL)
            for name in procs:
                del self.procs[name]
            self.timings[f"stop {'+'.join(procs)}"] = time.monotonic() - t0
        for log in self._logs.values():
            log.close()
        self._logs.clear()
        (self.home / _PIDS_FILE).unlink(missing_ok=True)

    # -- REST API v2 -----------------------------------------------------------------

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            import httpx

            self._client = httpx.Client(base_url=self.url, timeout=30)
        return self._client

    @property
    def rest(self) -> AirflowClient:
        """The REST API v2 client, logged in as the embedded admin."""
        if self._rest is None:
            self._rest = AirflowClient(self.url, ADMIN_USER, self.password)
        return self._rest

    def token(self, *, refresh: bool = False) -> str:
        """A JWT for the admin: ``POST /auth/token`` (the simple auth manager's login)."""
        return self.rest.token(refresh=refresh)

    def api(
        self,
        method: str,
        path: str,
        json: Any = None,
        *,
        params: Mapping[str, Any] | None = None,
        ok: Iterable[int] = (200, 201, 204),
    ) -> Any:
        """Call ``/api/v2<path>`` with the admin's token; the decoded JSON (``None`` if empty).

        Raises :class:`AirflowError` (with ``status`` in its context) on any other status.
        """
        return self.rest.api(method, path, json, params=params, ok=ok)

    def wait_for(
        self, probe: Callable[[], T | None], *, timeout: float, what: str, poll: float = 1.0
    ) -> T:
        """Call ``probe`` until it returns something other than ``None``; fail after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive()
            value = probe()
            if value is not None:
                return value
            if time.monotonic() > deadline:
                raise AirflowError(f"timed out after {timeout:.0f}s waiting for {what}")
            time.sleep(poll)

    def import_errors(self) -> list[dict[str, Any]]:
        return list(self.api("GET", "/importErrors")["import_errors"])

    def wait_for_dag(
        self, dag_id: str, timeout: float = 120.0, *, fail_on_import_errors: bool = True
    ) -> dict[str, Any]:
        """Wait until the dag-processor has parsed ``dag_id``; its ``GET /dags/{dag_id}``.

        Fails at once when a file has an import error (with its traceback).
        """

        def probe() -> dict[str, Any] | None:
            try:
                return dict(self.api("GET", f"/dags/{dag_id}"))
            except AirflowError as exc:
                if exc.context.get("status") != 404:
                    raise
            if fail_on_import_errors and (errors := self.import_errors()):
                details = "\n".join(f"{e['filename']}:\n{e['stack_trace']}" for e in errors)
                raise AirflowError(f"DAG files failed to import:\n{details}")
            return None

        return self.wait_for(probe, timeout=timeout, what=f"DAG {dag_id!r} to be parsed")

    def trigger(
        self,
        dag_id: str,
        logical_date: datetime | str | None = None,
        conf: Mapping[str, Any] | None = None,
        *,
        run_id: str | None = None,
        partition_key: str | None = None,
    ) -> str:
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
        return str(self.api("POST", f"/dags/{dag_id}/dagRuns", body)["dag_run_id"])

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return dict(self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}"))

    def dag_runs(self, dag_id: str, **params: Any) -> list[dict[str, Any]]:
        """``GET /dags/{dag_id}/dagRuns`` (filters as query parameters, e.g. ``run_type``)."""
        params = {"order_by": "id", "limit": 100, **params}
        return list(self.api("GET", f"/dags/{dag_id}/dagRuns", params=params)["dag_runs"])

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances"
        return list(self.api("GET", path, params={"limit": 1000})["task_instances"])

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
        """A task attempt's log as text (``.../taskInstances/{task_id}/logs/{try_number}``)."""
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}"
        content = self.api("GET", path, params={"full_content": "true"}).get("content", [])
        lines = []
        for item in content:
            if isinstance(item, dict):
                extra = {k: v for k, v in item.items() if k not in {"event", "timestamp", "level"}}
                lines.append(
                    f"{item.get('timestamp', '')} {item.get('level', '')} {item.get('event', '')}"
                    + (f" {extra}" if extra else "")
                )
            else:
                lines.append(str(item))
        return "\n".join(lines)

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}"
        return self.api("GET", path, params={"deserialize": "true"})["value"]

    def wait_for_run(
        self, dag_id: str, run_id: str, timeout: float = 300.0, *, poll: float = 1.0
    ) -> str:
        """Poll the run until it is ``success`` or ``failed``; that state.

        On a timeout the error lists every task's state, and the logs of failed tasks.
        """

        def probe() -> str | None:
            state = str(self.dag_run(dag_id, run_id)["state"])
            return state if state in TERMINAL_RUN_STATES else None

        try:
            return self.wait_for(
                probe, timeout=timeout, poll=poll, what=f"run {run_id!r} of {dag_id!r}"
            )
        except AirflowError as exc:
            raise AirflowError(f"{exc}\n{self.describe_run(dag_id, run_id)}") from exc

    def describe_run(self, dag_id: str, run_id: str) -> str:
        """Task states of a run, with the log tail of every failed task: for error messages."""
        lines = []
        for ti in self.task_instances(dag_id, run_id):
            lines.append(f"  {ti['task_id']}[{ti.get('map_index', -1)}]: {ti['state']}")
            if ti["state"] in {"failed", "upstream_failed", "up_for_retry"} and ti.get(
                "try_number"
            ):
                try:
                    log = self.task_log(dag_id, run_id, ti["task_id"], ti["try_number"])
                    lines.append("    " + "\n    ".join(log.splitlines()[-30:]))
                except AirflowError:
                    pass
        return "\n".join(lines)

    def wait_for_dag_run(
        self, dag_id: str, *, timeout: float = 300.0, finished: bool = True, **params: Any
    ) -> dict[str, Any]:
        """The first run of ``dag_id`` matching ``params`` (e.g. ``run_type="asset_triggered"``).

        With ``finished`` it waits until that run is ``success`` or ``failed`` too.
        """

        def probe() -> dict[str, Any] | None:
            runs = self.dag_runs(dag_id, **params)
            if not runs:
                return None
            if finished and runs[0]["state"] not in TERMINAL_RUN_STATES:
                return None
            return runs[0]

        return self.wait_for(probe, timeout=timeout, what=f"a run of {dag_id!r} matching {params}")

    def assets(self, **params: Any) -> list[dict[str, Any]]:
        """``GET /assets`` (e.g. ``uri_pattern=...``, ``dag_ids=...``)."""
        return list(self.api("GET", "/assets", params={"limit": 100, **params})["assets"])

    def asset_events(self, **params: Any) -> list[dict[str, Any]]:
        """``GET /assets/events`` (filters: ``asset_id``, ``source_dag_id``, ``source_run_id``, …)."""
        params = {"limit": 100, "order_by": "timestamp", **params}
        return list(self.api("GET", "/assets/events", params=params)["asset_events"])

    def upstream_asset_events(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """The asset events that triggered an asset-triggered run."""
        path = f"/dags/{dag_id}/dagRuns/{run_id}/upstreamAssetEvents"
        return list(self.api("GET", path)["asset_events"])

    def backfill(
        self,
        dag_id: str,
        from_date: datetime | str,
        to_date: datetime | str,
        *,
        reprocess_behavior: str = "none",
        max_active_runs: int = 10,
        run_backwards: bool = False,
        dag_run_conf: Mapping[str, Any] | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """``POST /backfills`` (or ``/backfills/dry_run``): runs for every interval in the range.

        The DAG needs a periodic schedule; ``reprocess_behavior`` is ``none``, ``failed``
        or ``completed`` (what to do with intervals that already have a run).
        """

        def iso(value: datetime | str) -> str:
            return value.isoformat() if isinstance(value, datetime) else value

        body = {
            "dag_id": dag_id,
            "from_date": iso(from_date),
            "to_date": iso(to_date),
            "run_backwards": run_backwards,
            "dag_run_conf": dict(dag_run_conf or {}),
            "reprocess_behavior": reprocess_behavior,
            "max_active_runs": max_active_runs,
        }
        return dict(self.api("POST", "/backfills/dry_run" if dry_run else "/backfills", body))


# --------------------------------------------------------------------------- lockstep airflow up


def data_roots(dags_folder: Path, root: str | None = None, *, cwd: Path | None = None) -> dict[str, list[str]]:
    """Storage root -> the pipelines of the specs in ``dags_folder`` that write there, each
    root resolved as the CLI resolves it (``root``, else the spec's own, relative to its file;
    a shipped spec's relative to ``cwd``). A spec that does not load is left out: the
    dag-processor reports it as an import error."""
    from pipelines.errors import LockstepError
    from pipelines.spec import load_spec

    previous = Path.cwd()
    roots: dict[str, list[str]] = {}
    try:
        if cwd is not None:
            os.chdir(cwd)
        for path in sorted(Path(dags_folder).glob("*.yaml")):
            try:
                spec = load_spec(path)
                resolved = spec.root(root)
            except (LockstepError, ValueError):
                continue
            roots.setdefault(resolved, []).append(spec.name)
    finally:
        os.chdir(previous)
    return roots


def up(
    *,
    project: Path | None = None,
    port: int = DEFAULT_PORT,
    home: Path | None = None,
    dags_folder: Path | None = None,
    plugins_folder: Path | None = None,
    sql_alchemy_conn: str | None = None,
    out: Callable[[str], None] = print,
    progress: Callable[[str], None] | None = None,
    root: str | None = None,
) -> int:
    """Run Airflow in the foreground until Ctrl-C (or SIGTERM, SIGHUP); the exit code.

    Defaults, relative to ``project`` (the current directory): home ``.airflow/``, DAGs
    ``dags/``, plugins ``plugins/``, SQLite metadata DB, port 8080.

    - **One data root with the CLI**: the components run in ``project`` (not the home) with
      ``root`` (else the caller's ``LOCKSTEP_ROOT``) made absolute, so every spec resolves its storage root
      exactly as ``lockstep status`` run from ``project`` does; the roots are printed.
    - **No surprise run**: new DAGs start paused (Airflow's own default), so the first start
      schedules nothing on a small machine; unpause a DAG to let it follow its schedule, or
      ``lockstep backfill --via airflow --unpause`` a range. A DAG's pause state is kept
      across restarts.
    - **Progress**: ``progress`` hears each start-up phase (the CLI shows it on one line).
    - **Lineage**: Lockstep's OpenLineage extractor is configured (it emits only once an
      OpenLineage transport is, e.g. ``AIRFLOW__OPENLINEAGE__TRANSPORT``).
    """
    from pipelines.airflow.lineage import AIRFLOW_ENV as LINEAGE_ENV

    project = Path(project or Path.cwd()).resolve()
    home = Path(home or project / ".airflow").resolve()
    dags_folder = Path(dags_folder or project / "dags").resolve()
    plugins = plugins_folder or (project / "plugins")
    plugins_folder = Path(plugins) if Path(plugins).is_dir() else None
    extra_env = {k: v for k, v in LINEAGE_ENV.items() if k not in os.environ}
    extra_env["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] = os.environ.get(
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION", "True")
    extra_env.update(absolute_root({"LOCKSTEP_ROOT": root} if root else os.environ, project))

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # SIGTERM (kill, a supervisor) and SIGHUP (the terminal closed) stop it like Ctrl-C does
    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    af = EmbeddedAirflow(
        home,
        dags_folder=dags_folder,
        plugins_folder=plugins_folder,
        port=port,
        sql_alchemy_conn=sql_alchemy_conn,
        inherit_airflow_env=True,
        extra_env=extra_env,
        cwd=project,
        progress=progress,
    )
    try:
        out(f"Starting Airflow 3 (home {home}, DAGs {dags_folder}) ...")
        roots = data_roots(dags_folder, extra_env.get("LOCKSTEP_ROOT"), cwd=project)
        for root, pipelines in roots.items():
            out(f"  data       {root}  ({', '.join(pipelines)}; the CLI reads the same)")
        with af:
            out(
                f"\nAirflow is up: {af.url}\n"
                f"  log in as  {ADMIN_USER} / {af.password}\n"
                f"  REST API   {af.url}/api/v2  (token: POST {af.url}/auth/token)\n"
                f"  logs       {af.log_dir}\n"
                f"  airflow CLI: set -a; . {af.env_file}; set +a; airflow dags list\n"
                + ("New DAGs start paused: unpause one in the UI to follow its schedule, or run a range with\n"
                   "  lockstep backfill PIPELINE --via airflow --start D --end D --unpause\n"
                   if extra_env["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] == "True" else "")
                + "Ctrl-C stops every component.\n"
            )
            while True:
                af._check_alive()
                time.sleep(1)
    except KeyboardInterrupt:
        out("\nStopping Airflow ...")
        return 0
    except AirflowError as exc:
        out(f"error: {exc}")
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
