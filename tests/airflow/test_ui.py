"""The Lockstep page and API, served by the FastAPI app the plugin mounts in Airflow."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from pipelines.runner import run_interval
from pipelines.spec import Interval, load_spec
from tests.conftest import small_spec_data


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> TestClient:
    dags = tmp_path / "dags"
    dags.mkdir()
    data = small_spec_data(regions=2, rows=200, name="ui_demo")
    data["storage"] = {"root": str(tmp_path / "lake")}
    (dags / "ui_demo.yaml").write_text(yaml.safe_dump(data))
    run_interval(load_spec(dags / "ui_demo.yaml"), Interval.for_date("2026-01-01"))
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(dags))
    from pipelines.airflow.ui import app

    return TestClient(app)


def test_api_and_page(client: TestClient) -> None:
    assert [p["name"] for p in client.get("/api/pipelines").json()] == ["ui_demo"]
    st = client.get("/api/pipelines/ui_demo/status").json()
    assert st["certified"]["interval"] == "2026-01-01"
    assert len(st["tables"]) == 8
    log = client.get("/api/pipelines/ui_demo/decisions").json()
    assert log[0]["status"] == "certified"
    page = client.get("/")
    assert page.status_code == 200 and "in force" in page.text and "eu-central" in page.text
    assert client.get("/api/pipelines/nope/status").status_code == 404


def test_plugin_registers_the_app() -> None:
    import runpy

    from tests.conftest import REPO

    ns = runpy.run_path(str(REPO / "plugins" / "lockstep.py"))
    plugin = ns["LockstepPlugin"]
    assert plugin.fastapi_apps[0]["url_prefix"] == "/lockstep"
    assert plugin.external_views[0]["href"] == "/lockstep/"
