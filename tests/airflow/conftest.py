"""A real Airflow 3 for integration tests, started once per test session.

The metadata DB is a fresh PostgreSQL database when the server at ``$LOCKSTEP_POSTGRES_URL``
(default ``postgresql+psycopg2://postgres@127.0.0.1:5432/postgres``) accepts connections,
SQLite otherwise. With ``LOCKSTEP_REQUIRE_SERVICES=1`` a missing PostgreSQL fails the tests
instead. Tests write their DAG files into ``airflow_dags`` and wait for them with
``embedded_airflow.client.wait_for_dag``; every process the fixture started is stopped at the end
of the session, whatever happened.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.airflow.embedded import EmbeddedAirflow
from pipelines.airflow.postgres import (
    DEFAULT_POSTGRES_ADMIN_URL,
    check_postgres,
    create_database,
    drop_database,
)

# seconds per phase and the metadata DB's backend, printed at the end of the session (by
# tests/conftest.py, which also gathers them from the xdist worker that ran these tests)
from tests.conftest import BACKEND, TIMINGS

POSTGRES_ADMIN_URL = os.environ.get("LOCKSTEP_POSTGRES_URL", DEFAULT_POSTGRES_ADMIN_URL)

#: The folder is listed every ``parse_interval`` (2 s): a new DAG file is parsed at once, a
#: changed one too (Airflow's ``file_parsing_sort_mode`` modified_time lets a file changed
#: since its last parse skip the interval). Unchanged files need no re-parse: with a dozen DAG
#: files written over the session, re-parsing each every minute (each parse importing the
#: pipelines) took the dag-processor a tenth of a core for the whole run.
REPARSE_UNCHANGED = {"AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "3600"}
#: the simple auth manager's users (name: role) of the test Airflow; their passwords are in
#: the home's ``simple_auth_manager_passwords.json.generated``
#: (alice and bob hold ``op``, carol ``user``: region operators in tests/airflow/test_governance_api.py)
USERS = {"admin": "admin", "viewer": "viewer", "outsider": "", "alice": "op", "bob": "op", "carol": "user"}


def services_required() -> bool:
    return os.environ.get("LOCKSTEP_REQUIRE_SERVICES") == "1"


def pytest_configure(config: pytest.Config) -> None:
    registered = " ".join(config.getini("markers"))
    if "slow:" not in registered:
        config.addinivalue_line("markers", "slow: end-to-end tests that start real processes")
    if "services:" not in registered:
        config.addinivalue_line("markers", "services: tests that need PostgreSQL or Redis")


@pytest.fixture(scope="session")
def postgres_problem() -> str | None:
    """Why the metadata DB cannot be PostgreSQL here (``None``: it can)."""
    return check_postgres(POSTGRES_ADMIN_URL)


@pytest.fixture(scope="session")
def airflow_metadata_db(postgres_problem: str | None) -> Iterator[str | None]:
    """A fresh PostgreSQL database URL, or ``None`` for SQLite."""
    if postgres_problem:
        if services_required():
            pytest.fail(
                f"LOCKSTEP_REQUIRE_SERVICES=1 but PostgreSQL is unusable: {postgres_problem}",
                pytrace=False,
            )
        yield None
        return
    url = create_database(admin_url=POSTGRES_ADMIN_URL)
    try:
        yield url
    finally:
        drop_database(url, admin_url=POSTGRES_ADMIN_URL)


@pytest.fixture(scope="session")
def airflow_dags(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The dags folder of the session's Airflow: tests write their DAG files here."""
    return tmp_path_factory.mktemp("airflow-dags")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


# Every test that uses it is in one xdist group (tests/conftest.py: AIRFLOW_GROUP): one worker
# runs them, one after another, so one Airflow starts per session; its home, DAGs folder and
# port are the worker's. Package-scoped: it stops when that worker leaves tests/airflow, not at
# the session's end (idle, its dag-processor re-parsing the DAGs folder took a core's tenth for
# the rest of the session, beside the suite's heaviest tests).
@pytest.fixture(scope="package")
def embedded_airflow(
    tmp_path_factory: pytest.TempPathFactory,
    airflow_metadata_db: str | None,
    airflow_dags: Path,
) -> Iterator[EmbeddedAirflow]:
    home = tmp_path_factory.mktemp("airflow-home")
    af = EmbeddedAirflow(
        home, dags_folder=airflow_dags, sql_alchemy_conn=airflow_metadata_db, parse_interval=2,
        plugins_folder=Path(__file__).resolve().parents[2] / "plugins",
        extra_env={
            # besides the admin: a read-only viewer and a user without a role (no access at all)
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:{r}" for u, r in USERS.items()),
            **REPARSE_UNCHANGED,
        },
    )
    BACKEND["metadata DB"] = "PostgreSQL" if airflow_metadata_db else "SQLite"
    # a SIGTERM (a CI timeout) interrupts the session like Ctrl-C, so teardown still stops Airflow
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with af:
            TIMINGS.update({f"airflow {k}": v for k, v in af.timings.items()})
            yield af
    finally:
        signal.signal(signal.SIGTERM, previous)
    TIMINGS.update({f"airflow {k}": v for k, v in af.timings.items() if k.startswith("stop")})


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """On a failure, attach the tail of every component's log to the report."""
    report = yield
    af = getattr(item, "funcargs", {}).get("embedded_airflow")
    if report.failed and isinstance(af, EmbeddedAirflow):
        for log in sorted(af.log_dir.glob("*.log")):
            lines = log.read_text(errors="replace").splitlines()[-60:]
            report.sections.append((f"airflow {log.stem} (last 60 lines)", "\n".join(lines)))
    return report
