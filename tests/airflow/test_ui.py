"""The Lockstep view: the certification matrix, the drill-down and their HTML, in-process.

The routes' auth runs against a real api-server in ``test_auth.py``; here the app answers
401 to a request without a token, before it reads anything.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from pipelines.certify import override
from pipelines.demo import with_faults
from pipelines.runner import run_interval
from pipelines.spec import FaultSpec, Interval, PipelineSpec, load_spec
from pipelines.spec.release import ModelsSpec
from tests.conftest import REPO, small_spec_data

CERTIFIED, BLOCKED, OVERRIDDEN = "2026-01-01", "2026-01-02", "2026-01-03"
OVERRIDE_REASON = "eu-north list lags by a day: known, accepted by risk"
RELEASE_WHY = "first fraud model, trained on the overridden day"


def build_lake(folder: Path, name: str = "ui_demo") -> PipelineSpec:
    """A 3-region pipeline with one certified, one blocked and one overridden interval.

    The spec is written to ``folder/<name>.yaml`` (a DAGs folder) with its data under
    ``folder/<name>-lake``. On the 2nd eu-central holds a stale merchant risk list (parity
    blocks); on the 3rd eu-north does, and an operator overrides the block.
    """
    data = small_spec_data(regions=3, rows=200, name=name)
    data["storage"] = {"root": str(folder / f"{name}-lake")}
    data["schedule"] = "None"
    data["validation"]["suites_dir"] = str(REPO / "expectations")  # the spec is not beside them
    data["models"]["window"] = 1  # one certified day to train a model on (release_model below)
    if "promotion" in ModelsSpec.model_fields:  # the promotion gate: a window these days hold, any AUC
        data["models"]["promotion"] = {"window": 1, "max_auc_drop": 1.0, "max_psi": 10.0}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    spec = load_spec(path)
    faulty = with_faults(spec, [
        FaultSpec(kind="stale_reference", regions=["eu-central"], dates=[date.fromisoformat(BLOCKED)]),
        FaultSpec(kind="stale_reference", regions=["eu-north"], dates=[date.fromisoformat(OVERRIDDEN)]),
    ])
    for ds in (CERTIFIED, BLOCKED, OVERRIDDEN):
        run_interval(faulty, Interval.for_date(ds))
    override(spec, Interval.for_date(OVERRIDDEN), reason=OVERRIDE_REASON,
             generation=generation_of(spec, OVERRIDDEN, "blocked"))
    return spec


def release_model(spec: PipelineSpec) -> dict[str, Any]:
    """A model trained on the overridden day (certified through the override), shadow-scored
    and released from it: the release in force for the newest certified interval."""
    from pipelines.release_flow import release_model as release_

    return release_(spec, OVERRIDDEN, until=OVERRIDDEN, effective_from=OVERRIDDEN, why=RELEASE_WHY)["release"]


def generation_of(spec: PipelineSpec, interval: str, status: str) -> str:
    """The generation id of the interval's newest decision with ``status`` (what an operator
    reads off ``explain`` before deciding)."""
    from pipelines.certify import decisions

    return [d for d in decisions(spec) if d.interval == interval and d.status == status][-1].generation_id


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> PipelineSpec:
    spec = build_lake(tmp_path_factory.mktemp("dags"))
    release_model(spec)
    return spec


def test_matrix_states_and_reasons(lake: PipelineSpec) -> None:
    from pipelines.matrix import certification_matrix

    m = certification_matrix(lake)
    assert m["intervals"] == [CERTIFIED, BLOCKED, OVERRIDDEN]
    assert {c["state"] for c in m["cells"][CERTIFIED].values()} == {"certified"}
    blocked = m["cells"][BLOCKED]
    assert blocked["eu-central"]["state"] == "blocked" and blocked["eu-central"]["at_fault"] == ["eu-central"]
    assert blocked["eu-central"]["reason"].startswith("parity.merchant_risk")
    assert {blocked[r]["state"] for r in blocked if r != "eu-central"} == {"held"}
    assert blocked["eu-west"]["reason"].startswith("held by eu-central: parity.merchant_risk")
    over = m["cells"][OVERRIDDEN]["eu-north"]
    assert over["state"] == "overridden" and OVERRIDE_REASON in over["reason"]
    assert m["in_force"]["interval"] == OVERRIDDEN and m["in_force"]["kind"] == "override"
    assert [d["kind"] for d in m["decisions"]][:2] == ["override", "gate"]
    assert certification_matrix(lake, last=1)["intervals"] == [OVERRIDDEN]


def test_matrix_rollback_revokes_later_intervals(tmp_path: Path) -> None:
    from pipelines.certify import rollback
    from pipelines.matrix import certification_matrix

    spec = build_lake(tmp_path)
    rollback(spec, generation_of(spec, CERTIFIED, "certified"), reason="bad promo data", scope="pipeline")
    m = certification_matrix(spec)
    assert m["cells"][OVERRIDDEN]["eu-west"]["state"] == "rolled back"
    assert "revoked by rollback" in m["cells"][OVERRIDDEN]["eu-west"]["reason"]
    assert m["cells"][CERTIFIED]["eu-west"]["state"] == "certified"
    assert m["cells"][BLOCKED]["eu-west"]["state"] == "held"  # held by eu-central, the region at fault
    assert m["in_force"]["kind"] == "rollback"


def test_pages_render(lake: PipelineSpec) -> None:
    from pipelines.airflow.ui import drill_down, render_drill_down, render_pipeline
    from pipelines.matrix import certification_matrix

    page = render_pipeline("/lockstep", certification_matrix(lake), history=True)
    assert "class='blocked' data-region='eu-central' data-interval='2026-01-02'" in page
    assert "/lockstep/pipelines/ui_demo/intervals/2026-01-02" in page
    assert OVERRIDE_REASON in page and "decision history" in page
    ex = drill_down(lake, Interval.for_date(BLOCKED))
    html = render_drill_down("/lockstep", lake, ex)
    failed = [f for f in ex["failed"] if f["check_id"] == "parity.merchant_risk"]
    assert failed and failed[0]["region"] == "eu-central"
    changed = failed[0]["details"]["changed_keys"]
    assert changed and str(changed[0]) in html
    assert "Data Docs" in html and "blocking checks" in html


def test_the_pipeline_page_shows_the_release_in_force_and_its_history(lake: PipelineSpec) -> None:
    from pipelines.airflow.ui import render_pipeline
    from pipelines.matrix import certification_matrix
    from pipelines.models import releases
    from pipelines.release_flow import model_releases

    [released] = releases(lake)
    rel = model_releases(lake)
    assert rel is not None and rel["model"] == lake.models.name  # type: ignore[union-attr]
    assert rel["interval"] == OVERRIDDEN and rel["in_force"]["release_id"] == released.release_id
    assert rel["upcoming"] is None and [r["release_id"] for r in rel["history"]] == [released.release_id]
    if rel["evaluations"] is not None:  # where pipelines.models records shadow evaluations: one per region
        assert sorted(e["region"] for e in rel["evaluations"]) == sorted(lake.regions)
    html = render_pipeline("/lockstep", {**certification_matrix(lake), "releases": rel}, history=True)
    assert f"<span class='pill ok'>in force</span> for {OVERRIDDEN}: <b>{released.release_id}</b>" in html
    assert "<table class=releases>" in html and RELEASE_WHY in html
    assert f"version {released.model_version}" in html


def test_a_pipeline_without_a_release_says_nothing_scores(tmp_path: Path) -> None:
    from pipelines.airflow.ui import render_releases
    from pipelines.release_flow import model_releases

    data = small_spec_data(regions=2, name="no_release")
    data["storage"] = {"root": str(tmp_path / "lake")}
    path = tmp_path / "no_release.yaml"
    path.write_text(yaml.safe_dump(data))
    rel = model_releases(load_spec(path))
    assert rel is not None and rel["in_force"] is None and rel["history"] == []
    html = render_releases(rel)
    assert "no release in force</span> for -: nothing scores certified data" in html and "no release yet" in html
    data.pop("models")
    path.write_text(yaml.safe_dump(data))
    assert model_releases(load_spec(path)) is None and render_releases(None) == ""


def test_routes_need_a_token(lake: PipelineSpec, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(Path(str(lake.path)).parent))
    from pipelines.airflow.ui import app

    client = TestClient(app)
    for path in ("/", "/api/pipelines", "/api/pipelines/ui_demo/status", "/api/pipelines/ui_demo/decisions",
                 "/api/pipelines/ui_demo/matrix", "/api/pipelines/ui_demo/releases", "/pipelines/ui_demo",
                 "/pipelines/ui_demo/intervals/2026-01-02",
                 "/pipelines/ui_demo/docs/eu-central/index.html", "/api/pipelines/nope/status"):
        assert client.get(path).status_code == 401, path
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert client.get(path).status_code == 404, path


def test_the_view_finds_a_spec_by_the_name_it_declares_now(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The view parses a spec file's name once per change of the file, not per request: a
    file added, renamed inside or made unparseable is seen as it is at the next request."""
    import os

    from pipelines.airflow.ui.routes import _specs

    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(tmp_path))
    path = tmp_path / "fraud.yaml"
    path.write_text("name: alpha\n")
    assert _specs() == {"alpha": path}
    assert _specs() == {"alpha": path}  # unchanged: the name known
    stamp = path.stat().st_mtime_ns
    path.write_text("name: omega\n")  # the same size
    os.utime(path, ns=(stamp, stamp + 1_000_000))  # even a clock that moved 1 ms sees the change
    assert _specs() == {"omega": path}
    path.write_text("name: [unclosed\n")  # unparseable: listed by its stem, loading it names the error
    (tmp_path / "second.yaml").write_text("name: beta\n")
    assert _specs() == {"fraud": path, "beta": tmp_path / "second.yaml"}


def test_the_package_registers_the_plugin_through_its_entry_point() -> None:
    """An Airflow that has Lockstep installed loads the view from the ``airflow.plugins`` entry
    point: nothing needs copying into a plugins folder (the repo's holds no plugin)."""
    from importlib.metadata import entry_points

    from pipelines.airflow.plugin import LockstepPlugin

    [ep] = [e for e in entry_points(group="airflow.plugins") if e.name == "lockstep"]
    plugin = ep.load()
    assert plugin is LockstepPlugin
    assert not list((REPO / "plugins").glob("*.py"))
    assert plugin.fastapi_apps[0]["url_prefix"] == "/lockstep"
    assert {v["destination"] for v in plugin.external_views} == {"nav", "dag", "dag_run"}
    assert plugin.external_views[0]["href"] == "/lockstep/"


@pytest.mark.slow
def test_airflow_shows_region_names_and_the_block_reason_first(embedded_airflow: object, airflow_dags: Path) -> None:
    """In Airflow's own views: mapped tasks are labelled by region; the gate fails with the
    first reason on the first line of its error."""
    from datetime import UTC, datetime

    from pipelines.airflow.embedded import EmbeddedAirflow

    af = embedded_airflow
    assert isinstance(af, EmbeddedAirflow)
    data = small_spec_data(regions=2, rows=150, name="views_demo")
    data["storage"] = {"root": str(airflow_dags / "views_demo-lake")}
    data["schedule"] = "None"
    data["validation"]["suites_dir"] = str(REPO / "expectations")
    data["airflow"]["task_granularity"] = "region"
    data["sources"]["merchant_risk"]["faults"] = [
        {"kind": "stale_reference", "regions": ["eu-central"], "dates": [BLOCKED]}]
    (airflow_dags / "views_demo.yaml").write_text(yaml.safe_dump(data))
    (airflow_dags / "views_demo.py").write_text(
        "from pathlib import Path\n\nfrom pipelines.airflow import build_dag\n\n"
        "dag = build_dag(Path(__file__).with_name('views_demo.yaml'))\n")
    af.client.wait_for_dag("views_demo")
    run_id = af.client.trigger("views_demo", datetime.fromisoformat(f"{BLOCKED}T00:00:00+00:00").astimezone(UTC))
    assert af.client.wait_for_run("views_demo", run_id, timeout=600) == "failed"
    tis = {(ti["task_id"], ti["map_index"]): ti for ti in af.client.task_instances("views_demo", run_id)}
    labels = sorted(ti["rendered_map_index"] for (task_id, _), ti in tis.items() if task_id == "region.region")
    assert labels == ["eu-central", "eu-west"]
    gate = tis[("gate", -1)]
    assert gate["state"] == "failed"
    log = af.client.task_log("views_demo", run_id, "gate", gate["try_number"])
    first = next(line for line in log.splitlines() if "BLOCKED views_demo" in line)
    assert "BLOCKED views_demo 2026-01-02: parity.merchant_risk eu-central/merchant_risk:" in first
