"""Spec loading: every malformed spec fails with one message naming file, field and expectation."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from pipelines.errors import SpecError
from pipelines.spec import Interval, load_spec
from tests.conftest import REPO, small_spec_data


def write(tmp_path: Path, data: object, name: str = "p.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return p


def error_of(path: Path) -> str:
    with pytest.raises(SpecError) as exc:
        load_spec(path)
    assert str(path) in str(exc.value), "the message names the file"
    return str(exc.value)


def test_flagship_spec_loads() -> None:
    spec = load_spec("fraud_features")
    assert spec.name == "fraud_features"
    assert len(spec.regions) == 12
    assert {t.path for t in spec.tables} == {
        "raw/transactions", "reference/merchant_risk", "features/card_features", "features/merchant_features",
    }
    assert spec.table("merchant_risk").replicated
    assert spec.airflow.retry_delay.total_seconds() == 60


def test_spec_hash_ignores_formatting(tmp_path: Path) -> None:
    data = small_spec_data()
    a = load_spec(write(tmp_path, data, "a.yaml"))
    b = load_spec(write(tmp_path, yaml.safe_dump(data, default_flow_style=True), "b.yaml"))
    assert a.spec_hash() == b.spec_hash()
    data["regions"] = data["regions"][:2]
    assert load_spec(write(tmp_path, data, "c.yaml")).spec_hash() != a.spec_hash()


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d.update(colour="blue"), "colour: Extra inputs are not permitted"),
        (lambda d: d["tables"][0].update(layr="raw"), "tables[0].layr: Extra inputs are not permitted"),
        (lambda d: d.update(regions=["eu-west", "../etc"]), "regions[1]: String should match pattern"),
        (lambda d: d.update(regions=["EU_WEST"]), "regions[0]: String should match pattern"),
        (lambda d: d.update(regions=["eu-west", "eu-west"]), "duplicate region"),
        (lambda d: d.pop("start_date"), "start_date: Field required"),
        (lambda d: d.update(start_date="yesterday"), "start_date: Input should be a valid date"),
        (lambda d: d["tables"][0].update(layer="raww"), "tables[0].layer: Input should be 'raw'"),
        (lambda d: d["tables"][0].update(source="nope"), "tables[0].source: unknown source 'nope'"),
        (lambda d: d["features"][0].update(output="transactions"), "features[0].output"),
        (lambda d: d["features"][0].update(transform="not a path"), "features[0].transform: String should match"),
        (lambda d: d["sources"]["transactions"].update(rows_per_region=-1), "sources.transactions.rows_per_region"),
        (lambda d: d["sources"].update(x={"kind": "parquet", "path": "/d/{regoin}.parquet"}), "unknown placeholder"),
        (lambda d: d["sources"].update(x={"kind": "ftp"}), "sources.x: Input tag 'ftp'"),
        (lambda d: d["reconcile"]["parity"][0].update(table="nope"), "reconcile.parity[0].table: unknown table"),
        (lambda d: d["airflow"].update(retry_delay="soon"), "airflow.retry_delay"),
        (lambda d: d.update(name="Fraud Features"), "name: String should match pattern"),
    ],
)
def test_malformed_spec_names_field(tmp_path: Path, mutate, expected: str) -> None:  # type: ignore[no-untyped-def]
    data = small_spec_data()
    mutate(data)
    assert expected in error_of(write(tmp_path, data))


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    msg = error_of(write(tmp_path, "name: x\nregions: [a, b\n"))
    assert "YAML syntax error at line" in msg


def test_yaml_syntax_error_is_the_pure_python_loaders_line_and_wording(tmp_path: Path) -> None:
    """Specs parse through libyaml (pipelines.spec.loading.SAFE_LOADER), but an error is worded as
    PyYAML's own loader words it (libyaml: "did not find expected ',' or ']'")."""
    msg = error_of(write(tmp_path, "name: x\nregions: [a, b\n"))
    assert "YAML syntax error at line 3, column 1: expected ',' or ']', but got '<stream end>'" in msg, msg


def test_every_shipped_spec_parses_as_pyyaml_parses_it() -> None:
    from pipelines.spec.loading import SAFE_LOADER, parse_yaml, shipped_pipelines

    assert SAFE_LOADER is yaml.CSafeLoader  # PyYAML's wheel has libyaml: the fast path is the one taken
    files = [*shipped_pipelines().values(), *(REPO / "dags").glob("*.yaml"), *(REPO / "docker" / "dags").glob("*.yaml")]
    assert len(files) >= 4
    for f in files:
        text = f.read_text()
        assert parse_yaml(text) == yaml.safe_load(text), f


def test_top_level_must_be_mapping(tmp_path: Path) -> None:
    assert "expected a mapping" in error_of(write(tmp_path, "- a\n- b\n"))


def test_missing_pipeline_or_file() -> None:
    with pytest.raises(SpecError, match="no such pipeline"):
        load_spec("no_such_pipeline")
    with pytest.raises(SpecError, match="cannot read spec"):
        load_spec("/nonexistent/dir/p.yaml")


def test_cli_prints_spec_error_without_traceback(tmp_path: Path) -> None:
    from pipelines.cli import _register, app

    _register()
    data = small_spec_data()
    data["tables"][0]["layer"] = "raww"
    path = write(tmp_path, data)
    result = CliRunner().invoke(app, ["run", str(path), "--date", "2026-01-01", "--root", str(tmp_path)])
    assert result.exit_code == 2
    out = result.output
    assert str(path) in out and "tables[0].layer" in out
    assert "Traceback" not in out


def test_cli_registration_surfaces_import_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    import pipelines.cli as cli

    cli._register()  # every listed command module imports
    monkeypatch.setattr(cli, "COMMAND_MODULES", [*cli.COMMAND_MODULES, "no_such_area"])
    with pytest.raises(ModuleNotFoundError, match="no_such_area"):
        cli._register()


def test_interval_keys() -> None:
    day = Interval.for_date("2026-01-02")
    assert day.key == "2026-01-02" and day.partition(["ds"]) == {"ds": "2026-01-02"}
    hour = Interval.for_date("2026-01-02", "hour", 5)
    assert hour.key == "2026-01-02T05" and hour.partition(["ds", "hour"]) == {"ds": "2026-01-02", "hour": "05"}
