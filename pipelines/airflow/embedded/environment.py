"""The configuration of an embedded Airflow: its ``AIRFLOW_HOME`` and ``AIRFLOW__*`` variables,
the ports it listens on, and the data root its components share with the CLI.

These build the environment of processes :class:`~pipelines.airflow.embedded.EmbeddedAirflow`
starts; they read the caller's environment only where they are handed it (``env``).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path

from pipelines.airflow.secrets import ADMIN_USER, PASSWORDS_FILE, home_secrets, write_passwords_file

__all__ = ["COMPONENTS", "UP_COMPONENTS", "DEFAULT_PORT", "absolute_root", "airflow_env", "free_port", "port_in_use"]

DEFAULT_PORT = 8080
#: the components a test harness needs (no deferrable operator runs in Lockstep's DAGs)
COMPONENTS = ("api-server", "scheduler", "dag-processor")
#: what ``lockstep airflow up`` runs: every component Airflow's home page reports on
UP_COMPONENTS = (*COMPONENTS, "triggerer")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nothing listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, port)) == 0


#: the module whose import warms the processes tasks fork from (:mod:`pipelines.airflow.warm`)
WARM_MODULE = "pipelines.airflow.warm"
#: seconds between two parses of an unchanged DAG file (Airflow's default
#: ``min_file_process_interval``); a new or changed file is parsed when the folder is listed
REPARSE_SECONDS = 30


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
    password is in :func:`~pipelines.airflow.secrets.home_secrets`; new DAGs unpaused; files
    re-listed every ``parse_interval`` seconds (a new or changed file parsed then, an unchanged
    one every :data:`REPARSE_SECONDS`: a spec's YAML edited beside an unchanged DAG file shows
    within that). ``log_server_ports`` (worker,
    triggerer) default to free ports, so two embedded Airflows, or one next to a real one, do
    not collide.

    >>> env = airflow_env(Path("/tmp/af"), port=8081, dags_folder=Path("dags"))
    >>> env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]
    'http://127.0.0.1:8081/execution/'
    """
    home = Path(home).resolve()
    home.mkdir(parents=True, exist_ok=True)
    keys = home_secrets(home)
    write_passwords_file(home, keys["admin_password"])
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
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / PASSWORDS_FILE),
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
        # [dag_processor]: list the folder every parse_interval; a new or changed file is parsed
        # at once (modified_time: a file changed since its last parse skips the interval), an
        # unchanged one every REPARSE_SECONDS at the least (each parse imports the pipeline:
        # re-parsing every few seconds kept an idle Airflow's dag-processor busy)
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": str(parse_interval),
        "AIRFLOW__DAG_PROCESSOR__FILE_PARSING_SORT_MODE": "modified_time",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": str(max(parse_interval, REPARSE_SECONDS)),
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_STORAGE_PATH": str(home / "dag_bundles"),
        # [scheduler]
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        # a warm interpreter for tasks: the LocalExecutor's workers start from a fork server
        # that imported Lockstep's task modules once; each task process, forked from a worker,
        # inherits them (README, Airflow: "Task start-up")
        "AIRFLOW__SCHEDULER__MP_START_METHOD": "forkserver",
        "AIRFLOW__SCHEDULER__MP_FORKSERVER_PRELOAD": WARM_MODULE,
        # Celery workers import it in their main process, before the prefork pool forks
        "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS": f"{WARM_MODULE}.CELERY_CONFIG",
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
