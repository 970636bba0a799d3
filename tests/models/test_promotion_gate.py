"""The promotion gate over a real 12-region evaluation window of 7 intervals (15 minutes each),
certified by the real runner, with a real MLflow SQLite registry.

One module-scoped certified window and a trained, shadow-scored candidate; each case copies
the whole root and applies one real fault through real operations (a run whose source
delivers a stale risk list, so the gate blocks; a run never gated; tables rewritten after
certification; an override that expires), then asserts the refusal names every region with
that interval and reason, and that the refusal is in the release log."""

from __future__ import annotations

import json
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pipelines.certify import decisions, override
from pipelines.errors import CertificationError
from pipelines.models import (
    PromotionRefused,
    evaluate_promotion,
    evaluations,
    history,
    promote,
    release_in_force,
    shadow_score,
    train,
)
from pipelines.runner import run_interval
from pipelines.spec import PipelineSpec
from tests.models.conftest import quarter_data, quarter_spec, quarters, write_spec

#: building the 12-region window of eight certified intervals takes 30-90 s
pytestmark = pytest.mark.slow

REGIONS = 12
WINDOW = 7
MODELS = {"window": 3, "seed": 5, "promotion": {"window": WINDOW}}
KEYS = quarters(quarter_spec(1, models=MODELS), WINDOW + 2)  # 7 certified, then one more for the cases
WINDOW_KEYS, NEXT = KEYS[1:WINDOW + 1], KEYS[WINDOW + 1]
HOUR_OF_NEXT = int(NEXT[11:13])


def _spec(faults: list[dict[str, Any]] | None = None) -> PipelineSpec:
    return quarter_spec(REGIONS, models=MODELS, faults=faults)


@pytest.fixture(scope="module")
def window(tmp_path_factory: pytest.TempPathFactory) -> tuple[PipelineSpec, str, str]:
    """Eight certified intervals in 12 regions (the window is the last seven), a model trained
    on three of them and shadow-scored on the newest one in every region."""
    spec, root = _spec(), str(tmp_path_factory.mktemp("gate") / "lake")
    for key in KEYS[:WINDOW + 1]:
        decision = run_interval(spec, spec.interval_at(key), root=root).decision
        assert decision is not None and decision.certified, (key, decision and decision.reasons[:3])
    trained = train(spec, until=WINDOW_KEYS[2], root=root)
    for region in spec.regions:
        shadow_score(spec, trained.version, WINDOW_KEYS[-1], region, root=root)
    return spec, root, trained.version


def _copy(window: tuple[PipelineSpec, str, str], tmp_path: Path) -> tuple[PipelineSpec, str, str]:
    spec, root, version = window
    copy = str(tmp_path / "lake")
    shutil.copytree(root, copy)
    return spec, copy, version


def _refused(spec: PipelineSpec, version: str, root: str, **kwargs: Any) -> list[dict[str, Any]]:
    with pytest.raises(PromotionRefused) as refused:
        promote(spec, version, why="the gate decides", root=root, **kwargs)
    recorded = history(spec, root=root)[-1]
    assert recorded.kind == "refused" and recorded.release_id == refused.value.release_id
    assert recorded.reasons == json.loads(json.dumps(refused.value.reasons, default=str))
    assert release_in_force(spec, NEXT, root=root) is None  # a refusal is never in force
    return refused.value.reasons


def _window_reasons(reasons: list[dict[str, Any]], interval: str, state: str) -> dict[str, str]:
    """Region -> message of the window reasons about ``interval`` in ``state``."""
    return {r["region"]: r["message"] for r in reasons
            if r["check_id"] == "promotion.window" and r["interval"] == interval and r["state"] == state}


def test_accepted_when_every_interval_is_certified_and_shadow_scored(window: tuple[PipelineSpec, str, str],
                                                                     tmp_path: Path) -> None:
    spec, root, version = _copy(window, tmp_path)
    evaluation = evaluate_promotion(spec, version, root=root)
    assert evaluation.admitted, evaluation.reasons
    assert evaluation.window == WINDOW_KEYS and evaluation.baseline is None  # the first release: no comparison
    assert set(evaluation.regions) == set(spec.regions)
    assert all(v["intervals"] == [WINDOW_KEYS[-1]] for v in evaluation.regions.values())
    release = promote(spec, version, why="first model", root=root)
    assert release.kind == "promote" and release.effective_from == NEXT  # after the window: nothing scored yet
    assert release.evaluated["window"] == WINDOW_KEYS
    assert release_in_force(spec, NEXT, root=root) == release


def test_promotion_decision_over_12_regions_by_7_intervals_is_decided_from_the_control_plane(
        window: tuple[PipelineSpec, str, str], record_property: Any) -> None:
    """The whole window judged, every cell admitted; the time is recorded, not asserted (its figure
    is the scoring bench's promotion-decision ratio)."""
    spec, root, version = window
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        evaluation = evaluate_promotion(spec, version, root=root, load=False)
        times.append(time.perf_counter() - t0)
    assert evaluation.admitted and not evaluation.reasons, evaluation.reasons[:3]
    assert len(evaluation.window) == WINDOW and len(spec.regions) == REGIONS
    record_property("promotion_decision_median_s", round(sorted(times)[1], 3))


def test_refused_on_a_blocked_interval_names_every_region(window: tuple[PipelineSpec, str, str],
                                                         tmp_path: Path) -> None:
    spec, root, version = _copy(window, tmp_path)
    stale = _spec([{"kind": "stale_reference", "regions": ["ap-south"], "dates": [NEXT[:10]],
                    "hours": [HOUR_OF_NEXT], "magnitude": 5}])
    decision = run_interval(stale, stale.interval_at(NEXT), root=root).decision
    assert decision is not None and not decision.certified
    reasons = _refused(spec, version, root)  # the window now ends with the blocked interval
    blocked = _window_reasons(reasons, NEXT, "blocked")
    assert set(blocked) == set(spec.regions), reasons[:3]
    assert "parity" in blocked["ap-south"] and "blocked" in blocked["eu-west"]
    # and training on a window holding it is refused, the interval named
    with pytest.raises(CertificationError, match=f"interval {NEXT} is not certified"):
        train(spec, until=NEXT, root=root)


def test_refused_on_an_interval_not_run_names_every_region(window: tuple[PipelineSpec, str, str],
                                                          tmp_path: Path) -> None:
    spec, root, version = _copy(window, tmp_path)
    run_interval(spec, spec.interval_at(NEXT), root=root, certify=False)  # written, evidence published, never gated
    reasons = _refused(spec, version, root, until=NEXT)
    not_run = _window_reasons(reasons, NEXT, "not run")
    assert set(not_run) == set(spec.regions), reasons[:3]
    assert all("no gate decision" in m for m in not_run.values())


def test_refused_on_tables_rewritten_after_certification(window: tuple[PipelineSpec, str, str],
                                                         tmp_path: Path) -> None:
    spec, root, version = _copy(window, tmp_path)
    last = WINDOW_KEYS[-1]
    drifted = _spec([{"kind": "drift", "regions": list(spec.regions), "dates": [last[:10]],
                      "hours": [int(last[11:13])], "magnitude": 0.5}])
    run_interval(drifted, drifted.interval_at(last), root=root, certify=False)  # the tables move on, uncertified
    reasons = _refused(spec, version, root)
    stale = _window_reasons(reasons, last, "stale profile")
    assert set(stale) == set(spec.regions), reasons[:3]
    assert all("rewritten after certification" in m for m in stale.values())


def test_refused_when_an_override_has_expired(window: tuple[PipelineSpec, str, str], tmp_path: Path) -> None:
    spec, root, version = _copy(window, tmp_path)
    stale = _spec([{"kind": "stale_reference", "regions": ["ap-south"], "dates": [NEXT[:10]],
                    "hours": [HOUR_OF_NEXT], "magnitude": 5}])
    blocked = run_interval(stale, stale.interval_at(NEXT), root=root).decision
    assert blocked is not None and not blocked.certified
    until = datetime.now(UTC) + timedelta(seconds=3)
    override(spec, spec.interval_at(NEXT), reason="reviewed: the risk list is late", generation=blocked.generation_id,
             until=until, root=root)
    # while the override is live, the interval counts as certified
    assert not _window_reasons(evaluate_promotion(spec, version, root=root, load=False).reasons, NEXT, "blocked")
    time.sleep(max(0.0, (until - datetime.now(UTC)).total_seconds()) + 0.2)
    reasons = _refused(spec, version, root)
    expired = _window_reasons(reasons, NEXT, "override expired")
    assert set(expired) == set(spec.regions), reasons[:3]
    assert all("expired at" in m for m in expired.values())


def test_refused_without_shadow_scores_and_through_the_cli(window: tuple[PipelineSpec, str, str],
                                                           tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from pipelines.cli import _register, app

    spec, root, _ = _copy(window, tmp_path)
    fresh = train(spec, until=WINDOW_KEYS[3], root=root)  # never shadow-scored
    assert evaluations(spec, version=fresh.version, root=root).height == 0
    _register()
    spec_file = write_spec(quarter_data(REGIONS, models=MODELS), tmp_path / "fraud_features.yaml")
    runner = CliRunner()
    out = runner.invoke(app, ["release", "promote", str(spec_file), fresh.version, "--why", "cli", "--root", root,
                              "--json"])
    assert out.exit_code == 2, out.output
    error = json.loads(out.stdout)["error"]
    assert error["type"] == "PromotionRefused" and "shadow-scored on 0 certified interval(s)" in error["message"]
    listed = json.loads(runner.invoke(app, ["release", "history", str(spec_file), "--root", root, "--json"]).stdout)
    assert listed[-1]["kind"] == "refused"
    assert {r["region"] for r in listed[-1]["reasons"] if r["check_id"] == "promotion.shadow"} == set(spec.regions)
    verdict = runner.invoke(app, ["release", "evaluate", str(spec_file), fresh.version, "--root", root, "--json"])
    assert verdict.exit_code == 0 and json.loads(verdict.stdout)["admitted"] is False
    assert decisions(spec, root=root)  # the decision log was only read
