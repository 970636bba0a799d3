"""The Lockstep view as an operator sees it: Debian's Chromium, logged in through Airflow.

Opens Airflow's nav entry (the view in Airflow's frame), the pipeline's page and a blocked
interval's drill-down, and asserts what is on screen. Screenshots go to ``tests/artifacts/``
(``LOCKSTEP_SCREENSHOTS`` overrides the folder). Needs ``chromium`` and ``chromium-driver``
(``apt-get install -y chromium chromium-driver``) and ``selenium`` (the dev extra).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.airflow.embedded import EmbeddedAirflow
from tests.airflow.test_auth import login_password
from tests.airflow.test_ui import (
    BLOCKED,
    CERTIFIED,
    OVERRIDDEN,
    OVERRIDE_REASON,
    RELEASE_WHY,
    build_lake,
    release_model,
)
from tests.conftest import REPO

pytestmark = pytest.mark.slow

PIPELINE = "browser_demo"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--window-size=1500,1000", "--disable-dev-shm-usage")
ARTIFACTS = Path(os.environ.get("LOCKSTEP_SCREENSHOTS") or REPO / "tests" / "artifacts")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("Chromium is missing: apt-get install -y chromium chromium-driver", pytrace=False)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver: object, css: str, timeout: float = 120) -> object:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout).until(ec.visibility_of_element_located((By.CSS_SELECTOR, css)))
    except TimeoutException:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "failure.png"))  # type: ignore[attr-defined]
        raise AssertionError(f"{css!r} not visible after {timeout:.0f}s at {driver.current_url}"  # type: ignore[attr-defined]
                             f"; screenshot {ARTIFACTS / 'failure.png'}") from None


def _cell(driver: object, region: str, interval: str) -> tuple[str, str]:
    from selenium.webdriver.common.by import By

    td = driver.find_element(  # type: ignore[attr-defined]
        By.CSS_SELECTOR, f"table#matrix-{PIPELINE} td[data-region='{region}'][data-interval='{interval}']")
    return td.find_element(By.CLASS_NAME, "state").text, td.get_attribute("title")


def _fits(driver: object) -> bool:
    """Does the page fit the window's width (what is wider scrolls inside its own box)?"""
    return bool(driver.execute_script(  # type: ignore[attr-defined]
        "return document.documentElement.scrollWidth <= document.documentElement.clientWidth"))


def test_an_operator_reads_the_matrix_and_drills_down(
    embedded_airflow: EmbeddedAirflow, airflow_dags: Path, browser: object,
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from pipelines.airflow.ui import drill_down
    from pipelines.spec import Interval

    af = embedded_airflow
    spec = build_lake(airflow_dags, PIPELINE)
    released = release_model(spec)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver = browser

    # log in through Airflow's own login page, then open the nav entry
    driver.get(f"{af.url}/plugin/lockstep")  # type: ignore[attr-defined]
    _wait(driver, "input[name='username']").send_keys("viewer")  # type: ignore[attr-defined]
    driver.find_element(By.CSS_SELECTOR, "input[name='password']").send_keys(login_password(af, "viewer"))  # type: ignore[attr-defined]
    driver.find_element(By.CSS_SELECTOR, "button[type='submit']").click()  # type: ignore[attr-defined]
    # the login page redirects once the token is set: wait until it is gone, then open the entry

    WebDriverWait(driver, 120).until(  # type: ignore[arg-type]
        lambda d: not d.find_elements(By.CSS_SELECTOR, "input[name='password']"))
    driver.get(f"{af.url}/plugin/lockstep")  # type: ignore[attr-defined]

    # Airflow shows the view in its frame: the index, with this pipeline's matrix
    frame = _wait(driver, "iframe")
    driver.switch_to.frame(frame)  # type: ignore[attr-defined]
    _wait(driver, f"table#matrix-{PIPELINE}")
    assert _cell(driver, "eu-west", CERTIFIED)[0] == "certified"
    driver.switch_to.default_content()  # type: ignore[attr-defined]
    driver.save_screenshot(str(ARTIFACTS / "lockstep-nav.png"))  # type: ignore[attr-defined]

    # the pipeline's page, as Airflow's DAG tab shows it
    driver.get(f"{af.url}/lockstep/pipelines/{PIPELINE}")  # type: ignore[attr-defined]
    _wait(driver, f"table#matrix-{PIPELINE}")
    assert _cell(driver, "eu-central", CERTIFIED)[0] == "certified"
    state, reason = _cell(driver, "eu-central", BLOCKED)
    assert state == "blocked" and reason.startswith("parity.merchant_risk merchant_risk: eu-central differs")
    visible = driver.find_element(  # type: ignore[attr-defined]
        By.CSS_SELECTOR, f"td[data-region='eu-central'][data-interval='{BLOCKED}'] .reason").text
    assert visible.startswith("parity.merchant_risk")
    state, reason = _cell(driver, "eu-north", OVERRIDDEN)
    assert state == "overridden" and OVERRIDE_REASON in reason
    assert "decision history" in driver.page_source  # type: ignore[attr-defined]
    # the model: the release in force for the newest certified day, and the release history
    in_force = driver.find_element(By.CSS_SELECTOR, "p.release-in-force").text  # type: ignore[attr-defined]
    assert in_force.startswith(f"in force for {OVERRIDDEN}: {released['release_id']}"), in_force
    history = driver.find_element(By.CSS_SELECTOR, "table.releases").text  # type: ignore[attr-defined]
    assert released["release_id"] in history and RELEASE_WHY in history
    driver.save_screenshot(str(ARTIFACTS / "lockstep-view.png"))  # type: ignore[attr-defined]

    # the blocked cell leads to the interval's drill-down: the keys that differ
    driver.find_element(  # type: ignore[attr-defined]
        By.CSS_SELECTOR, f"td[data-region='eu-central'][data-interval='{BLOCKED}'] a").click()
    _wait(driver, "table.failed-checks")
    failed = [f for f in drill_down(spec, Interval.for_date(BLOCKED))["failed"]
              if f["check_id"] == "parity.merchant_risk" and f["region"] == "eu-central"]
    keys = failed[0]["details"]["changed_keys"]
    row = driver.find_element(By.CSS_SELECTOR, "tr.failed#eu-central")  # type: ignore[attr-defined]
    shown = row.find_element(By.CLASS_NAME, "keys").text
    assert keys and all(str(k) in shown for k in keys[:20])
    assert "merchant_risk" in row.text
    # blocking checks first, warnings folded; the page does not overflow to the right, even narrow
    assert driver.find_element(By.CSS_SELECTOR, "section.checks h2").text.startswith("blocking checks (")  # type: ignore[attr-defined]
    folds = driver.find_elements(By.CSS_SELECTOR, "details.warning")  # type: ignore[attr-defined]
    assert folds and not folds[0].find_element(By.CSS_SELECTOR, "table").is_displayed()
    driver.set_window_size(900, 1000)  # type: ignore[attr-defined]
    assert _fits(driver), "the drill-down overflows the window"
    driver.set_window_size(1500, 1000)  # type: ignore[attr-defined]
    driver.save_screenshot(str(ARTIFACTS / "lockstep-drill-down.png"))  # type: ignore[attr-defined]

    # the filters: only the blocked cells, as the form submits them
    driver.get(f"{af.url}/lockstep/pipelines/{PIPELINE}")  # type: ignore[attr-defined]
    _wait(driver, "form.filters").find_element(  # type: ignore[attr-defined]
        By.CSS_SELECTOR, "input[name='state'][value='blocked']").click()
    driver.find_element(By.CSS_SELECTOR, "form.filters button[type='submit']").click()  # type: ignore[attr-defined]
    WebDriverWait(driver, 60).until(lambda d: "state=blocked" in d.current_url)  # type: ignore[arg-type]
    shown = {td.get_attribute("data-interval") for td in driver.find_elements(  # type: ignore[attr-defined]
        By.CSS_SELECTOR, f"table#matrix-{PIPELINE} td")}
    assert shown == {BLOCKED}, shown

    # Airflow's DAG-run page: its Lockstep tab shows the run's interval, not the whole pipeline
    (airflow_dags / f"{PIPELINE}.py").write_text(
        "from pathlib import Path\n\nfrom pipelines.airflow import build_dag\n\n"
        f"dag = build_dag(Path(__file__).with_name('{PIPELINE}.yaml'))\n")
    af.client.wait_for_dag(PIPELINE)
    af.client.set_paused(PIPELINE, True)  # the run stays queued: Airflow alone knows its date
    from datetime import datetime

    run_id = af.client.trigger(PIPELINE, datetime.fromisoformat(f"{BLOCKED}T00:00:00+00:00"))
    driver.get(f"{af.url}/dags/{PIPELINE}/runs/{run_id}/plugin/lockstep-dag-run")  # type: ignore[attr-defined]
    driver.switch_to.frame(_wait(driver, "iframe"))  # type: ignore[attr-defined]
    note = _wait(driver, "p.run-interval").text  # type: ignore[attr-defined]
    assert f"processes interval {BLOCKED}" in note and run_id in note, note
    assert driver.find_element(By.CSS_SELECTOR, "table.failed-checks").is_displayed()  # type: ignore[attr-defined]
    assert not driver.find_elements(By.CSS_SELECTOR, f"table#matrix-{PIPELINE}")  # type: ignore[attr-defined]
    driver.switch_to.default_content()  # type: ignore[attr-defined]
    driver.save_screenshot(str(ARTIFACTS / "lockstep-run-tab.png"))  # type: ignore[attr-defined]
    if os.environ.get("LOCKSTEP_UPDATE_DOCS_SCREENSHOT") == "1":
        shutil.copy(ARTIFACTS / "lockstep-view.png", REPO / "docs" / "lockstep-view.png")


GOVERNED = "browser_gov"
OPERATOR = ["read", "run", "override", "rollback", "approve"]


def _sign_in(driver: object, af: EmbeddedAirflow, user: str) -> None:
    """A fresh session: Airflow's own login page, as ``user``."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.delete_all_cookies()  # type: ignore[attr-defined]
    driver.get(f"{af.url}/plugin/lockstep")  # type: ignore[attr-defined]
    _wait(driver, "input[name='username']").send_keys(user)  # type: ignore[attr-defined]
    driver.find_element(By.CSS_SELECTOR, "input[name='password']").send_keys(login_password(af, user))  # type: ignore[attr-defined]
    driver.find_element(By.CSS_SELECTOR, "button[type='submit']").click()  # type: ignore[attr-defined]
    WebDriverWait(driver, 120).until(  # type: ignore[arg-type]
        lambda d: not d.find_elements(By.CSS_SELECTOR, "input[name='password']"))


def test_one_operator_requests_an_override_another_approves_it_in_the_view(
    embedded_airflow: EmbeddedAirflow, airflow_dags: Path, browser: object,
) -> None:
    """alice (eu-central's operator) requests the override of eu-central's block with the
    page's button; bob (the same role) approves it on his page; the interval is overridden,
    and the view names both (conftest's USERS: alice and bob hold ``op``)."""
    import yaml
    from selenium.webdriver.common.by import By

    from pipelines.certify import decisions
    from pipelines.spec import load_spec

    af, driver = embedded_airflow, browser
    build_lake(airflow_dags, GOVERNED)
    path = airflow_dags / f"{GOVERNED}.yaml"
    path.write_text(yaml.safe_dump({**yaml.safe_load(path.read_text()), "governance": {
        "allow_local": False, "approvals": 1, "approval_expiry": "1h",
        "roles": {"admin": {"regions": "*", "actions": ["read", "run", "override", "rollback", "approve"]},
                  "op": {"regions": ["eu-central"], "actions": OPERATOR},
                  "user": {"regions": ["eu-west"], "actions": OPERATOR}}}}))
    spec = load_spec(path)
    page = f"{af.url}/lockstep/pipelines/{GOVERNED}/intervals/{BLOCKED}"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    # carol operates eu-west: no button to override eu-central's block
    _sign_in(driver, af, "carol")
    driver.get(page)  # type: ignore[attr-defined]
    _wait(driver, "section.checks")  # eu-west's checks: none of them blocks
    assert not driver.find_elements(By.CSS_SELECTOR, "form.request-override")  # type: ignore[attr-defined]

    # alice requests the override, with her reason
    _sign_in(driver, af, "alice")
    driver.get(page)  # type: ignore[attr-defined]
    form = _wait(driver, "form.request-override")
    form.find_element(By.NAME, "reason").send_keys("eu-central's risk list lags a day: accepted")  # type: ignore[attr-defined]
    form.find_element(By.CSS_SELECTOR, "button[type='submit']").click()  # type: ignore[attr-defined]
    row = _wait(driver, "tr.request.pending")
    assert row.find_element(By.CLASS_NAME, "requester").text == "airflow:alice"  # type: ignore[attr-defined]
    assert not row.find_elements(By.CSS_SELECTOR, "form.approve")  # type: ignore[attr-defined]  # not her own
    driver.save_screenshot(str(ARTIFACTS / "lockstep-request.png"))  # type: ignore[attr-defined]

    # bob approves it on his page: the decision is recorded with his approval
    _sign_in(driver, af, "bob")
    driver.get(page)  # type: ignore[attr-defined]
    form = _wait(driver, "tr.request.pending form.approve")
    form.find_element(By.NAME, "reason").send_keys("checked the feed")  # type: ignore[attr-defined]
    form.find_element(By.CSS_SELECTOR, "button.approve").click()  # type: ignore[attr-defined]
    row = _wait(driver, "tr.request.decided")
    assert "airflow:bob: checked the feed" in row.find_element(By.CLASS_NAME, "approvals").text  # type: ignore[attr-defined]
    history = driver.find_element(By.CSS_SELECTOR, "table.history").text  # type: ignore[attr-defined]
    assert "airflow:alice" in history and "approved by airflow:bob" in history
    driver.save_screenshot(str(ARTIFACTS / "lockstep-approved.png"))  # type: ignore[attr-defined]

    driver.get(f"{af.url}/lockstep/pipelines/{GOVERNED}")  # type: ignore[attr-defined]
    _wait(driver, f"table#matrix-{GOVERNED}")
    td = driver.find_element(  # type: ignore[attr-defined]
        By.CSS_SELECTOR, f"table#matrix-{GOVERNED} td[data-region='eu-central'][data-interval='{BLOCKED}']")
    assert td.find_element(By.CLASS_NAME, "state").text == "overridden"
    assert "override by airflow:alice, approved by airflow:bob" in td.get_attribute("title")
    last = decisions(spec)[-1]
    assert (last.kind, last.interval, last.who, last.approvers) == ("override", BLOCKED, "airflow:alice",
                                                                    ["airflow:bob"])
