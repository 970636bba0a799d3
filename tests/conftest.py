"""Shared fixtures: small real pipelines on real Delta tables in a temporary root; and how
the suite runs in parallel (``make test``: pytest-xdist, ``--dist loadgroup``): which tests
share a worker, the timing report gathered from the workers, and a watchdog that ends a
worker whose test outlives its timeout."""

from __future__ import annotations

import atexit
import faulthandler
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from pipelines.spec import PipelineSpec, load_spec, parse_spec

REPO = Path(__file__).resolve().parent.parent

# In-process Airflow (DagBag, dag.test) reads its configuration once, at import: give the test
# session its own home and SQLite database before anything imports airflow, so no test ever
# touches a user's ~/airflow.
_AIRFLOW_HOME = tempfile.mkdtemp(prefix="lockstep-test-airflow-")


def _remove_home(home: str = _AIRFLOW_HOME, owner: int = os.getpid()) -> None:
    if os.getpid() == owner:  # never from a forked child that exits through atexit
        shutil.rmtree(home, ignore_errors=True)


atexit.register(_remove_home)  # each process's own home, removed when the process ends
os.environ["AIRFLOW_HOME"] = _AIRFLOW_HOME
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_AIRFLOW_HOME}/airflow.db"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(Path(_AIRFLOW_HOME) / "dags")
(Path(_AIRFLOW_HOME) / "dags").mkdir()


def services_required() -> bool:
    return os.environ.get("LOCKSTEP_REQUIRE_SERVICES") == "1"


def small_spec_data(regions: int = 3, rows: int = 300, **overrides: Any) -> dict[str, Any]:
    """The flagship spec, shrunk: fewer regions and rows, same tables and transforms."""
    data = load_spec("fraud_features").model_dump(mode="json")
    data["regions"] = data["regions"][:regions]
    data["sources"]["transactions"]["rows_per_region"] = rows
    data["sources"]["transactions"]["merchants"] = 200
    data["sources"]["merchant_risk"]["merchants"] = 200
    # the flagship's suites, wherever a test writes the spec (a validated table's suite must exist)
    data["validation"]["suites_dir"] = str(REPO / "expectations")
    data.update(overrides)
    return data


def make_spec(regions: int = 3, rows: int = 300, **overrides: Any) -> PipelineSpec:
    spec = parse_spec(small_spec_data(regions, rows, **overrides), "test-spec")
    return spec.with_path(REPO / "dags" / "fraud_features.yaml")


@pytest.fixture
def root(tmp_path: Path) -> str:
    return str(tmp_path / "lake")


@pytest.fixture
def small_spec() -> PipelineSpec:
    return make_spec()


# --------------------------------------------------------------------------- the suite in parallel

#: seconds per phase of the session's embedded Airflow (and what tests measure under it),
#: printed at the end of the session; filled in by tests/airflow
TIMINGS: dict[str, float] = {}
BACKEND: dict[str, str] = {}
#: the xdist group of every test that uses the suite-wide Airflow (tests/airflow/conftest.py):
#: one worker runs them all, so one Airflow starts
AIRFLOW_GROUP = "embedded-airflow"
#: seconds past a test's timeout after which the watchdog ends its worker (pytest-timeout's
#: signal did not get through: a test stuck in native code)
WATCHDOG_GRACE = 300.0


def xdist_group(item: pytest.Item) -> str | None:
    """The tests that must run on one worker: those of the suite-wide Airflow, the distributed
    deployments (never two at once), and each module whose tests share a module-scoped fixture
    (built once, not once per worker)."""
    if "embedded_airflow" in getattr(item, "fixturenames", ()):
        return AIRFLOW_GROUP
    if item.nodeid.startswith("tests/distributed/"):
        # the compose deployment and the Celery workers, one after the other: side by side on
        # two cores, a killed Celery task waited minutes for its retry (810 s against 150 s alone)
        return "distributed"
    info = getattr(item, "_fixtureinfo", None)
    for defs in (info.name2fixturedefs.values() if info else ()):
        if defs and defs[-1].scope == "module":
            return f"module:{item.nodeid.split('::')[0]}"
    return None


#: seconds the slowest tests took alone (CI, two cores); any other test counts 60 when slow, 1
#: otherwise. Only the order in which xdist hands out work follows from them.
KNOWN_SECONDS = {
    "tests/distributed/test_docker.py::test_compose_deployment_certifies_an_interval_and_runs_the_consumer": 950,
    "tests/test_hourly_demo.py::test_story": 516,
    "tests/distributed/test_celery.py::test_celery_workers_per_region_group_certify_block_and_survive_a_kill": 401,
    "tests/airflow/test_e2e_pipeline.py::test_pipeline_certifies_and_triggers_the_consumer": 158,
    "tests/test_soak.py::test_soak_thirty_days": 110,
    "tests/airflow/test_leaks.py::test_no_raw_personal_value_in_any_output_of_a_demo_day": 50,
    "tests/reconcile/test_demo.py::test_no_raw_personal_value_in_the_demos_outputs": 21,
    "tests/models/test_release_race.py::test_soak_96_quarter_hours_three_promotions_and_a_rollback_while_scoring": 525,
    "tests/models/test_release_race.py::test_promotions_racing_scorers_never_mix_releases": 200,
    # its own 12-region, 10-day history; the module's 3-region, 4-day one is built by whichever
    # of the other tests runs first
    "tests/test_erasure.py::test_erase_deletes_recertifies_and_maintain_removes_every_older_file": 150,
    "tests/test_erasure.py::test_a_governed_erasure_needs_two_approvals_and_the_same_values": 45,
    "tests/test_erasure.py::test_an_erasure_killed_after_a_rewrite_is_finished_by_running_it_again": 40,
    "tests/airflow/test_browser.py::test_an_operator_reads_the_matrix_and_drills_down": 110,
    "tests/airflow/test_fab_users.py::test_the_deployments_init_creates_the_users_files_users_and_roles": 80,
    "tests/airflow/test_lineage.py::test_the_gate_exports_its_decision_when_it_decides": 65,
    # the module's failed run of the interval (its fixture), then the region's re-run
    "tests/airflow/test_rerun_region.py::test_a_region_outside_the_callers_scope_or_unknown_is_refused": 55,
    "tests/airflow/test_rerun_region.py::test_rerun_clears_the_regions_tasks_in_the_intervals_run_and_the_gate_decides_again": 25,
}


def _seconds(item: pytest.Item) -> float:
    return KNOWN_SECONDS.get(item.nodeid, 60.0 if item.get_closest_marker("slow") else 1.0)


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups (--dist loadgroup)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist: every test in its group (:func:`xdist_group`), and the work units (a
    group, or a test alone) longest first, so the long ones start at once and the short
    ones fill the gaps at the end (``--no-loadscope-reorder`` keeps this order; xdist's
    own puts units with more tests first, which left the longest single tests for last).
    Every worker collects, and so orders, the same way; without xdist nothing changes."""
    if not config.pluginmanager.hasplugin("xdist"):
        return
    units: dict[str, float] = {}
    unit_of: dict[int, str] = {}
    for item in items:
        group = xdist_group(item)
        if group and item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(group))
        unit = group or item.nodeid
        unit_of[id(item)] = unit
        units[unit] = units.get(unit, 0.0) + _seconds(item)
    if hasattr(config, "workerinput"):
        first = {unit: i for i, unit in reversed(list(enumerate(unit_of[id(item)] for item in items)))}
        items.sort(key=lambda item: (-units[unit_of[id(item)]], first[unit_of[id(item)]]))  # stable


@pytest.hookimpl(tryfirst=True)  # before xdist's worker sends the collected ids to the controller
def pytest_collection_finish(session: pytest.Session) -> None:
    """Name each grouped test ``<nodeid>@<group>``: the controller's loadgroup scheduler
    groups by that suffix. xdist 3.8 writes it to ``item._nodeid``, which pytest 9.2's
    structured node ids no longer read, so the groups were silently dropped
    (pytest-dev/pytest-xdist#1386); this writes it where this pytest keeps the id."""
    if not getattr(session.config.option, "loadgroup", False):  # set in xdist workers
        return
    for item in session.items:
        names = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                        for m in item.iter_markers("xdist_group")})
        suffix = "@" + "_".join(names)
        if not names or item.nodeid.endswith(suffix):
            continue
        if hasattr(item, "_id"):
            item._id = type(item._id).parse(item.nodeid + suffix)
        else:
            item._nodeid = item.nodeid + suffix


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        _Watchdog.install(config)
    elif threading.current_thread() is threading.main_thread():
        # a SIGTERM (a CI timeout) interrupts the session like Ctrl-C: xdist then stops its
        # workers, whose fixtures stop what they started
        signal.signal(signal.SIGTERM, _interrupt)


@pytest.hookimpl(trylast=True)  # after the session's fixtures are torn down (their stop timings)
def pytest_sessionfinish(session: pytest.Session) -> None:
    output = getattr(session.config, "workeroutput", None)
    if output is not None:  # an xdist worker: hand the report to the controller
        output["lockstep_timings"] = dict(TIMINGS)
        output["lockstep_backend"] = dict(BACKEND)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """The controller (xdist): gather what a worker measured."""
    output = getattr(node, "workeroutput", None) or {}
    TIMINGS.update(output.get("lockstep_timings", {}))
    BACKEND.update(output.get("lockstep_backend", {}))


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    if TIMINGS:
        terminalreporter.section("embedded Airflow timings")
        for name, value in BACKEND.items():
            terminalreporter.write_line(f"{name:<40} {value}")
        for name, seconds in TIMINGS.items():
            terminalreporter.write_line(f"{name:<40} {seconds:7.1f} s")


class _Watchdog:
    """In an xdist worker: when a test (setup, call and teardown) runs ``WATCHDOG_GRACE``
    seconds past its timeout, dump every thread's stack and end the worker. pytest-timeout's
    signal fails a hung test and runs its teardown (which stops Airflow); a test stuck where
    the signal is never handled would otherwise hold its worker, and xdist's end, forever.
    xdist reports the test as crashed and goes on with the others."""

    current: _Watchdog | None = None

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.deadline: float | None = None
        self.nodeid = ""
        threading.Thread(target=self._watch, name="lockstep-watchdog", daemon=True).start()

    @classmethod
    def install(cls, config: pytest.Config) -> None:
        timeout = float(config.getoption("timeout", None) or config.getini("timeout") or 0)
        if timeout > 0:
            cls.current = cls(timeout)

    def _watch(self) -> None:
        while True:
            time.sleep(5)
            deadline = self.deadline
            if deadline is not None and time.monotonic() > deadline:
                sys.stderr.write(f"\nwatchdog: {self.nodeid} ran {WATCHDOG_GRACE:.0f} s past its timeout; "
                                 "ending this worker\n")
                faulthandler.dump_traceback(all_threads=True)
                sys.stderr.flush()
                os._exit(70)

    def limit(self, item: pytest.Item) -> float:
        marker = item.get_closest_marker("timeout")
        timeout = float(marker.args[0]) if marker and marker.args else self.timeout
        return timeout + WATCHDOG_GRACE if timeout > 0 else float("inf")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, object, object]:
    watchdog = _Watchdog.current
    if watchdog is not None:
        watchdog.nodeid = item.nodeid
        watchdog.deadline = time.monotonic() + watchdog.limit(item)
    try:
        return (yield)
    finally:
        if watchdog is not None:
            watchdog.deadline = None
