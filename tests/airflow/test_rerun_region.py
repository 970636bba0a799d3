"""Re-running one region's interval from the Lockstep API on a real api-server and scheduler:
the interval's run is not duplicated (Airflow would answer 409 to a second run of its logical
date); the region's tasks and the cross-region ones after them are cleared in that run, as the
caller, and run again; the other regions' tasks stay as they were.

Roles (tests/airflow/conftest.py's USERS): alice holds ``op`` (eu-central's operators), carol
``user`` (eu-west's), as in tests/airflow/test_governance_api.py.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import yaml

from pipelines.airflow.embedded import EmbeddedAirflow
from pipelines.certify import decisions
from pipelines.spec import Interval, PipelineSpec, load_spec
from tests.airflow.test_auth import login
from tests.airflow.test_governance_api import GOVERNANCE
from tests.conftest import small_spec_data

pytestmark = pytest.mark.slow

PIPELINE = "gov_rerun"
DAY = "2026-01-01"
DOWN = "eu-central"  # alice's region, whose storage is unusable in the interval's first run


@pytest.fixture(scope="module")
def failed_run(embedded_airflow: EmbeddedAirflow, airflow_dags: Path) -> tuple[PipelineSpec, str]:
    """The pipeline, and the id of its run of DAY that failed: eu-central's storage was a file."""
    af = embedded_airflow
    data = small_spec_data(regions=3, rows=200, name=PIPELINE, governance=GOVERNANCE, schedule="None")
    lake = airflow_dags / f"{PIPELINE}-lake"
    data["storage"] = {"root": str(lake / "{region}"), "control_root": str(lake / "control")}
    data["airflow"]["retries"] = 0
    path = airflow_dags / f"{PIPELINE}.yaml"
    path.write_text(yaml.safe_dump(data))
    spec = load_spec(path)
    assert DOWN in spec.regions and "eu-west" in spec.regions
    lake.mkdir()
    (lake / DOWN).write_text("not a folder")
    (airflow_dags / f"{PIPELINE}.py").write_text(
        "from pathlib import Path\n\nfrom pipelines.airflow import build_dag\n\n"
        f"dag = build_dag(Path(__file__).with_name('{PIPELINE}.yaml'))\n")
    af.client.wait_for_dag(PIPELINE)
    af.client.set_paused(PIPELINE, False)
    run_id = af.client.trigger(PIPELINE, Interval.for_date(DAY).start)
    assert af.client.wait_for_run(PIPELINE, run_id, timeout=600) == "failed"
    (lake / DOWN).unlink()  # the region's storage is back
    return spec, run_id


def rerun(af: EmbeddedAirflow, user: str, region: str) -> httpx.Response:
    return httpx.post(f"{af.url}/lockstep/api/pipelines/{PIPELINE}/regions/{region}/intervals/{DAY}/run",
                      headers={"Authorization": f"Bearer {login(af, user)}"}, timeout=120)


def test_a_region_outside_the_callers_scope_or_unknown_is_refused(embedded_airflow: EmbeddedAirflow,
                                                                   failed_run: tuple[PipelineSpec, str]) -> None:
    af, (_, run_id) = embedded_airflow, failed_run
    denied = rerun(af, "carol", DOWN)
    assert denied.status_code == 403 and f"airflow:carol (user) may not run in {DOWN}" in denied.text
    unknown = rerun(af, "alice", "mars")
    assert unknown.status_code == 404 and "no region 'mars'" in unknown.text
    assert af.client.dag_run(PIPELINE, run_id)["state"] == "failed"  # nothing was cleared
    assert len(af.client.dag_runs(PIPELINE)) == 1


def test_rerun_clears_the_regions_tasks_in_the_intervals_run_and_the_gate_decides_again(
        embedded_airflow: EmbeddedAirflow, failed_run: tuple[PipelineSpec, str]) -> None:
    af, (spec, run_id) = embedded_airflow, failed_run
    [blocked] = decisions(spec)
    assert blocked.kind == "gate" and not blocked.certified
    assert [r["region"] for r in blocked.reasons if r["check_id"] == "delivery"] == [DOWN]

    done = rerun(af, "alice", DOWN)
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["action"] == "cleared" and body["dag_run_id"] == run_id and body["triggered_by"] == "airflow:alice"
    index = spec.regions.index(DOWN)
    assert sorted(map(tuple, body["cleared"])) == sorted(
        [(f"region.{step}", index) for step in ("ingest", "validate_inputs", "transform", "validate")]
        + [("gate", -1), ("reconcile", -1)])
    assert af.client.wait_for_run(PIPELINE, run_id, timeout=600) == "success"
    assert [r["dag_run_id"] for r in af.client.dag_runs(PIPELINE)] == [run_id]  # no second run of the interval

    tries = {(ti["task_id"], ti["map_index"]): ti["try_number"] for ti in af.client.task_instances(PIPELINE, run_id)}
    assert tries[("region.ingest", index)] == 2 and tries[("gate", -1)] == 2
    assert {tries[("region.ingest", i)] for i in range(len(spec.regions)) if i != index} == {1}
    log = decisions(spec)
    assert [d.kind for d in log] == ["gate", "gate"] and log[-1].certified and log[-1].interval == DAY
    assert log[-1].decision_id != blocked.decision_id
    # this pass of the run judged its own reconciliation, not the first pass's too
    assert (blocked.run_id, log[-1].run_id) == (run_id, f"{run_id}.clear1")
    # no OpenLineage transport here: the gate's export said so in one line and did not fail it
    gate_log = af.client.task_log(PIPELINE, run_id, "gate", 2)
    assert "decisions not exported to OpenLineage now" in gate_log, gate_log[-3000:]
