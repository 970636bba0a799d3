"""Certified model releases against a real MLflow SQLite registry and real Delta tables made by
the real runner: training only on certified windows, releases in force from an interval on,
rollback, scoring through the release and bit-identical replay."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipelines.certify import active_certifications
from pipelines.errors import CertificationError
from pipelines.models import (
    promote,
    release_in_force,
    releases,
    rollback,
    score,
    score_hash,
    train,
)
from pipelines.models import registry as model_registry
from pipelines.models.train import version_tags
from pipelines.runner import run_interval
from pipelines.spec import Interval, PipelineSpec
from pipelines.spec.settings import settings
from tests.conftest import make_spec, small_spec_data

DAYS = ["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04"]
UNCERTIFIED = "2026-01-05"
MODELS = {"window": 2, "seed": 11}


def _spec(**overrides: Any) -> PipelineSpec:
    return make_spec(regions=2, rows=1000, models=MODELS, **overrides)


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> tuple[PipelineSpec, str]:
    """Four certified days and one the gate never certified, in two regions."""
    spec, root = _spec(), str(tmp_path_factory.mktemp("models") / "lake")
    for day in DAYS:
        decision = run_interval(spec, Interval.for_date(day), root=root).decision
        assert decision is not None and decision.certified
    run_interval(spec, Interval.for_date(UNCERTIFIED), root=root, certify=False)
    return spec, root


def test_the_default_registry_is_sqlite_under_the_control_root(lake: tuple[PipelineSpec, str]) -> None:
    spec, root = lake
    assert model_registry.registry_uri(spec, root).startswith("sqlite:///")
    assert Path(root).resolve().as_posix() in model_registry.registry_uri(spec, root)
    assert model_registry.artifact_location(spec, root).startswith("file://")


def test_training_refused_on_an_uncertified_window_names_the_interval(lake: tuple[PipelineSpec, str]) -> None:
    spec, root = lake
    with pytest.raises(CertificationError, match=f"interval {UNCERTIFIED} is not certified"):
        train(spec, until=UNCERTIFIED, root=root)
    # an explicit exclusion trains on the rest and is recorded in the model's tags
    trained = train(spec, until=UNCERTIFIED, exclude=[UNCERTIFIED], root=root)
    assert set(trained.generations) == {DAYS[-1]}
    assert json.loads(version_tags(spec, trained.version, root)["lockstep.excluded"]) == [UNCERTIFIED]


def test_trained_model_binds_generations_and_suites(lake: tuple[PipelineSpec, str]) -> None:
    spec, root = lake
    trained = train(spec, until=DAYS[1], root=root)
    active = active_certifications(spec, root=root)
    tags = version_tags(spec, trained.version, root)
    assert json.loads(tags["lockstep.generations"]) == {d: active[d].generation_id for d in DAYS[:2]}
    suites: dict[str, Any] = {}
    for d in DAYS[:2]:
        suites.update(active[d].bindings["suites"])
    assert suites and json.loads(tags["lockstep.suites"]) == suites
    assert tags["lockstep.feature_version"] == "1" and tags["lockstep.plan_hash"]
    assert any(k.startswith("roc_auc.") for k in trained.metrics)


def test_promotion_refused_on_another_feature_version(lake: tuple[PipelineSpec, str]) -> None:
    spec, root = lake
    trained = train(spec, until=DAYS[1], root=root)
    data = small_spec_data(regions=2, rows=1000)
    features = [dict(f, version="2") if f["output"] == "card_features" else f for f in data["features"]]
    v2 = _spec(features=features)
    with pytest.raises(CertificationError, match="feature version '1'; the feature version in force is '2'"):
        promote(v2, trained.version, effective_from=DAYS[2], why="wrong features", root=root)


def test_releases_promote_score_rollback_and_replay(lake: tuple[PipelineSpec, str]) -> None:
    spec, root = lake
    region = spec.regions[0]
    first = train(spec, until=DAYS[1], root=root)
    r1 = promote(spec, first.version, effective_from=DAYS[2], why="first model", root=root)
    assert r1.kind == "promote" and r1.model_version == first.version and r1.who == settings().who()
    assert release_in_force(spec, DAYS[1], root=root) is None
    assert release_in_force(spec, DAYS[2], root=root) == r1
    scored_t3 = score(spec, DAYS[2], region, root=root)

    second = train(spec, until=DAYS[2], root=root)
    r2 = promote(spec, second.version, effective_from=DAYS[3], why="retrained", root=root)
    assert release_in_force(spec, DAYS[2], root=root) == r1  # the past keeps its release
    assert release_in_force(spec, DAYS[3], root=root) == r2

    # two intervals scored with two releases: one release_id per interval
    scored_t4 = score(spec, DAYS[3], region, root=root)
    assert scored_t3["release_id"].unique().to_list() == [r1.release_id]
    assert scored_t4["release_id"].unique().to_list() == [r2.release_id]
    assert scored_t4["model_version"].unique().to_list() == [second.version]

    # rollback: the earlier release is in force again from the next interval, audited
    back = rollback(spec, to=r1.release_id, effective_from=UNCERTIFIED, why="r2 misbehaves", root=root)
    assert back.kind == "rollback" and back.target == r1.release_id and back.model_version == first.version
    assert back.who == settings().who() and back.why == "r2 misbehaves"
    assert release_in_force(spec, DAYS[3], root=root) == r2
    assert release_in_force(spec, UNCERTIFIED, root=root) == back
    assert [r.release_id for r in releases(spec, root=root)] == [r1.release_id, r2.release_id, back.release_id]

    # replay with an earlier release, the model loaded from the registry again: bit-identical
    model_registry._load.cache_clear()
    replayed = score(spec, DAYS[2], region, release=r1.release_id, root=root)
    assert score_hash(replayed) == score_hash(scored_t3) and replayed.equals(scored_t3)
    assert score_hash(score(spec, DAYS[3], region, release=r1.release_id, root=root)) != score_hash(scored_t4)


def test_release_cli_train_promote_list_show(lake: tuple[PipelineSpec, str], tmp_path: Path) -> None:
    import yaml
    from typer.testing import CliRunner

    from pipelines.cli import _register, app

    _register()
    spec, root = lake
    spec_file = tmp_path / "fraud_features.yaml"
    spec_file.write_text(yaml.safe_dump(small_spec_data(regions=2, rows=1000, models=MODELS)))
    runner = CliRunner()
    base = [str(spec_file), "--root", root, "--json"]
    trained = runner.invoke(app, ["release", "train", *base, "--until", DAYS[1]])
    assert trained.exit_code == 0, trained.output
    version = json.loads(trained.stdout)["version"]
    refused = runner.invoke(app, ["release", "train", *base, "--until", UNCERTIFIED])
    assert refused.exit_code == 2 and UNCERTIFIED in refused.output  # stdout and stderr
    after = max([r.effective_from for r in releases(spec, root=root)] or [DAYS[2]])
    promoted = runner.invoke(app, ["release", "promote", *base, version, "--effective-from", after, "--why", "cli"])
    assert promoted.exit_code == 0, promoted.output
    release_id = json.loads(promoted.stdout)[0]["release_id"]
    listed = json.loads(runner.invoke(app, ["release", "list", *base]).stdout)
    assert listed == [r.to_json() for r in releases(spec, root=root)] and listed[-1]["release_id"] == release_id
    shown = json.loads(runner.invoke(app, ["release", "show", *base, "--interval", after]).stdout)
    assert shown[0]["release_id"] == release_id and shown[0]["model_version"] == version
    replay = runner.invoke(app, ["score", *base, "--date", DAYS[2], "--release", release_id])
    assert replay.exit_code == 0, replay.output
    scored = json.loads(replay.stdout)
    assert [r["region"] for r in scored] == spec.regions and {r["release_id"] for r in scored} == {release_id}
    assert scored[0]["score_hash"] == score_hash(score(spec, DAYS[2], spec.regions[0], release=release_id, root=root))
