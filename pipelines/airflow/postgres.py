"""PostgreSQL administration for an Airflow metadata DB: is a server usable, and a fresh
database per test session (create, then drop).

Airflow on PostgreSQL needs ``psycopg2-binary`` for its sync engine and ``asyncpg`` for its
async one, both in the ``postgres`` extra. Nothing here imports Airflow::

    url = create_database()        # postgresql+psycopg2://postgres@127.0.0.1:5432/lockstep_af_…
    with EmbeddedAirflow(home, dags_folder=dags, sql_alchemy_conn=url):
        ...
    drop_database(url)
"""

from __future__ import annotations

import uuid
from typing import Any

from pipelines.airflow.client import AirflowError

__all__ = ["DEFAULT_POSTGRES_ADMIN_URL", "check_postgres", "create_database", "drop_database", "ensure_database"]

#: where :func:`create_database` connects to create and drop databases
DEFAULT_POSTGRES_ADMIN_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"


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


def ensure_database(url: str) -> bool:
    """Create the database ``url`` names unless it exists (a deployment's own database, such as
    the model registry's), connecting to the server's ``postgres`` database as ``url``'s user,
    who may create databases. Returns whether it was created.

    >>> ensure_database("postgresql://airflow:pw@postgres:5432/mlflow")  # doctest: +SKIP
    True
    """
    name = _pg_url(url).database or ""
    if not name.replace("_", "").isalnum():
        raise AirflowError(f"invalid database name {name!r}: use letters, digits and _")
    admin = _pg_url(url).set(database="postgres").render_as_string(hide_password=False)
    conn = _pg_connect(admin)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone() is not None:
                return False
    finally:
        conn.close()
    create_database(name, admin_url=admin)
    return True


def drop_database(url_or_name: str, admin_url: str = DEFAULT_POSTGRES_ADMIN_URL) -> None:
    """Drop a database made by :func:`create_database`, closing its open connections."""
    name = _pg_url(url_or_name).database if "://" in url_or_name else url_or_name
    if not name or not name.replace("_", "").isalnum():
        raise AirflowError(f"invalid database name {name!r}")
    _pg_execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
