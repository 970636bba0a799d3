"""The Lockstep view an operator acts from, through a real api-server with a viewer's token:
the calendar axis and its paging (daily and hourly), the filters and their errors, the
DAG-run tab showing its run's interval, and the drill-down (blocking first, warnings folded,
"no data" for a region without rows)."""

from __future__ import annotations

import re
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import yaml

from pipelines.airflow.embedded import EmbeddedAirflow
from pipelines.certify import decisions
from pipelines.spec import FaultSpec, Interval, PipelineSpec
from tests.airflow.test_auth import login
from tests.airflow.test_ui import BLOCKED, CERTIFIED, OVERRIDDEN, build_lake
from tests.conftest import REPO

pytestmark = pytest.mark.slow

PIPELINE, HOURLY = "view_demo", "view_hourly"
NO_DATA = "2026-01-04"  # eu-north's transactions partition is missing that day


@pytest.fixture(scope="module")
def served(embedded_airflow: EmbeddedAirflow, airflow_dags: Path) -> tuple[EmbeddedAirflow, PipelineSpec, dict[str, str]]:
    """The 3-region lake of test_ui plus a 4th day without eu-north's partition; an hourly
    pipeline with no run at all; the daily one's DAG (schedule None) in Airflow; a viewer's token."""
    from pipelines.demo import hourly_flagship, with_faults
    from pipelines.runner import run_interval

    spec = build_lake(airflow_dags, PIPELINE)
    run_interval(with_faults(spec, [FaultSpec(kind="missing_partition", regions=["eu-north"],
                                              dates=[date.fromisoformat(NO_DATA)])]), Interval.for_date(NO_DATA))
    hourly = hourly_flagship().model_dump(mode="json")
    hourly.update(name=HOURLY, storage={"root": str(airflow_dags / f"{HOURLY}-lake")})
    hourly["validation"]["suites_dir"] = str(REPO / "expectations")
    (airflow_dags / f"{HOURLY}.yaml").write_text(yaml.safe_dump(hourly))
    (airflow_dags / f"{PIPELINE}.py").write_text(
        "from pathlib import Path\n\nfrom pipelines.airflow import build_dag\n\n"
        f"dag = build_dag(Path(__file__).with_name('{PIPELINE}.yaml'))\n")
    embedded_airflow.client.wait_for_dag(PIPELINE)
    embedded_airflow.client.set_paused(PIPELINE, True)  # runs triggered below stay queued
    return embedded_airflow, spec, {"Authorization": f"Bearer {login(embedded_airflow, 'viewer')}"}


def _get(served: Any, path: str, **params: Any) -> httpx.Response:
    af, _, headers = served
    return httpx.get(f"{af.url}/lockstep{path}", params=params or None, headers=headers, timeout=120)


def _matrix(served: Any, pipeline: str = PIPELINE, **params: Any) -> dict[str, Any]:
    response = _get(served, f"/api/pipelines/{pipeline}/matrix", **params)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_the_columns_are_the_calendar_of_the_range_paged_from_the_newest(served: Any) -> None:
    m = _matrix(served)  # by default: up to the newest interval with a decision or data
    assert m["intervals"] == [CERTIFIED, BLOCKED, OVERRIDDEN, NO_DATA]
    m = _matrix(served, start="2026-01-01", end="2026-01-31", size=7)
    assert m["intervals"] == [f"2026-01-{d}" for d in range(25, 32)]
    assert {c["state"] for row in m["cells"].values() for c in row.values()} == {"not run"}
    assert m["paging"] | {"page": 0, "pages": 5, "total": 31, "older": True, "newer": False} == m["paging"]
    m = _matrix(served, start="2026-01-01", end="2026-01-31", size=7, page=4)
    assert m["intervals"] == [CERTIFIED, BLOCKED, OVERRIDDEN] and m["paging"]["newer"]
    assert m["cells"][BLOCKED]["eu-central"]["state"] == "blocked"
    m = _matrix(served, start="2025-12-20", end="2026-01-02")  # no interval before the spec's start_date
    assert m["intervals"] == [CERTIFIED, BLOCKED] and m["filters"]["start"] == CERTIFIED
    m = _matrix(served, before=BLOCKED, size=7)  # the page ends just before an interval
    assert m["intervals"] == [CERTIFIED]


def test_an_hourly_pipeline_pages_through_a_week_of_hours(served: Any) -> None:
    week = {"start": "2026-01-01T00", "end": "2026-01-07T23"}
    m = _matrix(served, HOURLY, **week)
    assert m["paging"]["total"] == 7 * 24 and m["paging"]["pages"] == 7 and m["paging"]["size"] == 24
    assert m["intervals"] == [f"2026-01-07T{h:02d}" for h in range(24)]
    assert m["cells"]["2026-01-07T05"][m["regions"][0]]["state"] == "not run"
    assert _matrix(served, HOURLY, page=6, **week)["intervals"][:2] == ["2026-01-01T00", "2026-01-01T01"]


def test_filters_keep_the_regions_states_and_dates_asked_for(served: Any) -> None:
    m = _matrix(served, region="eu-central", state="blocked")
    assert m["intervals"] == [BLOCKED] and m["regions"] == ["eu-central"]
    assert list(m["cells"][BLOCKED]) == ["eu-central"]
    m = _matrix(served, state=["held", "overridden"], region=["eu-west", "eu-north"])
    assert m["intervals"] == [BLOCKED, OVERRIDDEN, NO_DATA] and m["regions"] == ["eu-west", "eu-north"]
    m = _matrix(served, state="not-run", start="2026-01-01", end="2026-01-08")
    assert m["intervals"] == [f"2026-01-0{d}" for d in range(5, 9)]  # the 4th holds data: blocked
    assert _matrix(served, state="rolled-back")["intervals"] == []


@pytest.mark.parametrize(("params", "named"), [
    ({"region": "xx-nowhere"}, "region: view_demo has no region 'xx-nowhere' you may read"),
    ({"state": "bogus"}, "state: unknown state 'bogus'"),
    ({"start": "2026-13-01"}, "start: expected an interval key"),
    ({"start": "2026-01-05", "end": "2026-01-01"}, "start: 2026-01-05 is after end 2026-01-01"),
    ({"page": 9}, "page: 9 is past the last page"),
    ({"size": 0}, "size: 0 is out of range"),
])
def test_a_bad_filter_is_a_422_naming_the_parameter(served: Any, params: dict[str, Any], named: str) -> None:
    api = _get(served, f"/api/pipelines/{PIPELINE}/matrix", **params)
    assert api.status_code == 422 and api.json()["detail"].startswith(named), api.text
    page = _get(served, f"/pipelines/{PIPELINE}", **params)
    assert page.status_code == 422 and "form class=filters" in page.text
    assert re.search(r"class='bad filter-error'>" + re.escape(named.replace("'", "&#x27;")), page.text), page.text[-800:]
    assert _get(served, f"/api/pipelines/{PIPELINE}/matrix", page="x").status_code == 422


def test_the_pipeline_page_has_the_filters_and_pages_back_and_forth(served: Any) -> None:
    html = _get(served, f"/pipelines/{PIPELINE}", start="2026-01-01", end="2026-01-10", size=3).text
    assert "<form class=filters method=get" in html and "name=state value='rolled-back'" in html
    assert "data-interval='2026-01-10'" in html and "data-interval='2026-01-07'" not in html
    older = re.search(r"<a class=older href='([^']+)'", html)
    assert older and "page=1" in older.group(1) and "start=2026-01-01" in older.group(1)
    page2 = _get(served, older.group(1).replace("&amp;", "&").split("/lockstep", 1)[1]).text
    assert "data-interval='2026-01-07'" in page2 and "data-interval='2026-01-10'" not in page2
    assert "<a class=newer" in page2
    newest = _get(served, f"/pipelines/{PIPELINE}").text  # ends at the newest data: later days, up to now
    assert re.search(r"<a class=newer href='[^']*end=2026-01-18", newest)


def _run_tab(served: Any, run_id: str) -> httpx.Response:
    # what Airflow's DAG-run tab loads: the plugin's href with {DAG_ID} and {RUN_ID} substituted
    from pipelines.airflow.plugin import LockstepPlugin

    [view] = [v for v in LockstepPlugin.external_views if v["destination"] == "dag_run"]
    href = view["href"].replace("{DAG_ID}", quote(PIPELINE, safe="")).replace("{RUN_ID}", quote(run_id, safe=""))
    af, _, headers = served
    return httpx.get(f"{af.url}{href}", headers=headers, timeout=120)


def test_the_dag_run_tab_shows_the_drill_down_of_its_runs_interval(served: Any) -> None:
    _, spec, _ = served
    gate = next(d for d in decisions(spec) if d.interval == BLOCKED and d.kind == "gate")
    response = _run_tab(served, gate.run_id)
    assert response.status_code == 200, response.text
    assert f"processes interval <b>{BLOCKED}</b> <span class=muted>(as control plane records it)" in response.text
    assert "blocking checks (" in response.text and f"<h1>{PIPELINE} · {BLOCKED}</h1>" in response.text
    assert f"data-interval='{OVERRIDDEN}'" not in response.text  # not the whole pipeline's matrix
    assert _run_tab(served, "manual__never-ran").status_code == 404


def test_a_run_that_recorded_nothing_yet_is_placed_by_airflow(served: Any) -> None:
    af, _, _ = served
    queued = af.client.trigger(PIPELINE, datetime.fromisoformat("2026-01-06T00:00:00+00:00"))
    named = af.client.trigger(PIPELINE, datetime.fromisoformat("2026-01-09T00:00:00+00:00"),
                              conf={"interval": CERTIFIED})
    assert af.client.dag_run(PIPELINE, queued)["state"] == "queued"  # the DAG is paused
    html = _run_tab(served, queued).text
    assert "processes interval <b>2026-01-06</b> <span class=muted>(as airflow records it)" in html
    assert "no decision about this interval" in html
    assert f"processes interval <b>{CERTIFIED}</b>" in _run_tab(served, named).text


def test_the_drill_down_leads_with_what_blocks_and_folds_the_warnings(served: Any) -> None:
    certified = _get(served, f"/pipelines/{PIPELINE}/intervals/{CERTIFIED}").text
    assert "failed checks" not in certified and "blocking checks" not in certified
    warnings = re.search(r"<h2 class=warnings>warnings \((\d+)\)</h2>", certified)
    assert warnings and int(warnings.group(1)) > 0
    folded = re.findall(r"<details class=warning data-check='([^']+)'><summary><code>[^<]+</code> "
                        r"<span class=count>\((\d+)\)</span>", certified)
    assert folded and sum(int(n) for _, n in folded) == int(warnings.group(1))
    assert len({c for c, _ in folded}) == len(folded)  # one fold per check
    blocked = _get(served, f"/pipelines/{PIPELINE}/intervals/{BLOCKED}").text
    assert blocked.index("blocking checks (") < blocked.index("<h2 class=warnings>")
    assert "<table class=failed-checks>" in blocked and "parity.merchant_risk" in blocked
    no_data = _get(served, f"/pipelines/{PIPELINE}/intervals/{NO_DATA}").text
    heat = no_data[no_data.index("<table class=heat>"):]
    heat = heat[:heat.index("</table>")]
    north = heat[heat.index("<th>eu-north</th>"):]
    north = north[:north.index("</tr>")]
    assert "no data" in north and "nan" not in north.lower() and "rgba" not in north
    assert ">nan<" not in no_data.lower()
