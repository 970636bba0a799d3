"""``lockstep airflow up``: the embedded Airflow in the foreground of a project folder until
Ctrl-C, with the data root it shares with the CLI printed.

It builds the environment of the processes it starts from the caller's: ``LOCKSTEP_ROOT``
(made absolute against the project), ``AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION`` and the
OpenLineage variables the caller did not set are read from ``os.environ`` for that reason.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pipelines.airflow.client import AirflowError
from pipelines.airflow.embedded.environment import DEFAULT_PORT, UP_COMPONENTS, absolute_root
from pipelines.airflow.embedded.fab import FAB_PASSWORDS_FILE
from pipelines.airflow.embedded.harness import EmbeddedAirflow
from pipelines.airflow.secrets import ADMIN_USER
from pipelines.spec.settings import settings

__all__ = ["data_roots", "up"]

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
    auth: Literal["simple", "fab"] = "simple",
    users_file: Path | None = None,
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
    - **Auth**: the simple auth manager (one admin) by default; ``auth="fab"``: the FAB auth
      manager with the users and roles of ``users_file`` (:mod:`~pipelines.airflow.embedded.fab`),
      their passwords in the home's ``lockstep-fab-passwords.json``.
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
    extra_env.update(absolute_root({"LOCKSTEP_ROOT": root or settings().root or ""}, project))

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
        components=UP_COMPONENTS,
        auth=auth,
        users_file=users_file,
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
                + (f"  FAB users  {len(af.passwords) - 1} more, passwords in {af.home / FAB_PASSWORDS_FILE}\n"
                   if auth == "fab" else "")
                + f"  REST API   {af.url}/api/v2  (token: POST {af.url}/auth/token)\n"
                f"  logs       {af.log_dir}\n"
                f"  airflow CLI: set -a; . {af.env_file}; set +a; airflow dags list\n"
                + ("New DAGs start paused: unpause one in the UI to follow its schedule, or run a range with\n"
                   "  lockstep backfill PIPELINE --via airflow --start D --end D --unpause\n"
                   if extra_env["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] == "True" else "")
                + "Ctrl-C stops every component.\n"
            )
            while True:
                af.check_alive()
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
