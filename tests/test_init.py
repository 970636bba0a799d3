"""lockstep init / templates / schema: a working project from a shipped template; the spec reference."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.runner import run_interval
from pipelines.spec import Interval, PipelineSpec, load_spec
from pipelines.templates import TemplateError, init_project
from pipelines.templates import list_templates as templates
from pipelines.templates.reference import DESCRIPTIONS, EXAMPLES, fields, spec_reference

REPO = Path(__file__).resolve().parent.parent
LOCKSTEP = [str(Path(sys.executable).with_name("lockstep"))]


def test_templates_ship_both_and_carry_the_schema_line() -> None:
    names = {t.name for t in templates()}
    assert {"card_spend", "fraud_features"} <= names
    for t in templates():
        assert t.spec_path.read_text().startswith("# yaml-language-server: $schema=pipeline.schema.json")
        load_spec(t.spec_path)


def test_init_card_spend_certifies(tmp_path: Path) -> None:
    made = init_project(tmp_path / "pay", template="card_spend", name="payments", regions=["eu-west", "ap-south"])
    spec = load_spec(made.spec)
    assert spec.name == "payments" and spec.regions == ["eu-west", "ap-south"]
    for rel in ("payments_features.py", "dags/payments.py", "dags/payments_scoring.py", "tests/test_payments.py",
                "README.md", "pipeline.schema.json", "expectations/transactions.json"):
        assert (made.directory / rel).is_file(), rel
    assert not any("card_spend" in p.read_text() for p in made.files), "the template's name is replaced everywhere"
    result = run_interval(spec, Interval.for_date(made.sample_dates[-1]))
    assert result.decision is not None and result.decision.certified, result.summary()
    assert (made.directory / "lockstep-data" / "payments").is_dir(), "data lands next to the spec"


def test_init_refuses_a_non_empty_folder_and_bad_regions(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "f").write_text("")
    with pytest.raises(TemplateError, match="not an empty folder"):
        init_project(tmp_path / "x")
    with pytest.raises(TemplateError, match="region ids"):
        init_project(tmp_path / "y", regions=["EU"])
    with pytest.raises(TemplateError, match="no template named"):
        init_project(tmp_path / "z", template="nope")


def test_cli_init_templates_schema(tmp_path: Path) -> None:
    out = subprocess.run([*LOCKSTEP, "templates", "--json"], capture_output=True, text=True, check=True).stdout
    assert {t["name"] for t in json.loads(out)} >= {"card_spend", "fraud_features"}
    schema = json.loads(subprocess.run([*LOCKSTEP, "schema"], capture_output=True, text=True, check=True).stdout)
    assert schema == PipelineSpec.model_json_schema()
    made = json.loads(subprocess.run([*LOCKSTEP, "init", str(tmp_path / "f"), "--template", "fraud_features",
                                      "--name", "team_fraud", "--regions", "eu-west,us-east", "--json"],
                                     capture_output=True, text=True, check=True).stdout)
    assert load_spec(made["spec"]).regions == ["eu-west", "us-east"]


def test_spec_reference_is_up_to_date_and_complete() -> None:
    missing = [k for k, info in fields()
               if not (info.description or DESCRIPTIONS.get(k)) or not (info.examples or k in EXAMPLES)]
    assert not missing, f"give these fields a description and an example (Field(..., examples=[...])): {missing}"
    current = (REPO / "docs" / "spec-reference.md").read_text()
    assert current == spec_reference(), "docs/spec-reference.md is out of date: lockstep schema --markdown > docs/spec-reference.md"
    schema = json.loads((REPO / "docs" / "pipeline.schema.json").read_text())
    assert schema == PipelineSpec.model_json_schema(), "lockstep schema > docs/pipeline.schema.json"


def test_shipped_fraud_spec_matches_the_repo_flagship() -> None:
    shipped = load_spec(next(t for t in templates() if t.name == "fraud_features").spec_path)
    repo = load_spec(REPO / "dags" / "fraud_features.yaml")
    a, b = shipped.model_dump(mode="json"), repo.model_dump(mode="json")
    for d in (a, b):
        d.pop("consumers")
        d["storage"].pop("root")  # the repo's demo data sits beside dags/, a team's under its project
        d["validation"].pop("suites_dir")
        for f in d["features"]:
            f.pop("transform")
    assert a == b
    for suite in (REPO / "expectations").glob("*.json"):
        assert json.loads(suite.read_text()) == json.loads((shipped.suites_dir() / suite.name).read_text()), suite.name
