"""${VAR} / ${VAR:-default} in storage and sources, and paths relative to the spec file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipelines.errors import SpecError
from pipelines.spec import expand_env, load_spec

SPEC = {
    "name": "envp", "start_date": "2026-01-01", "regions": ["eu-west"],
    "storage": {"root": "${ENVP_ROOT:-lake}", "options": {"KEY": "${ENVP_KEY}", "PLAIN": "x"}},
    "sources": {"orders": {"kind": "csv", "path": "${ENVP_LANDING:-landing}/{region}/{ds}.csv"}},
    "tables": [{"name": "orders", "layer": "raw", "source": "orders"}],
    "validation": {"suites_dir": "suites"},
}


def write(tmp_path: Path, data: dict = SPEC) -> Path:
    path = tmp_path / "proj" / "envp.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    return path


def test_expand_env_defaults_and_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVP_A", "lake")
    monkeypatch.delenv("ENVP_B", raising=False)
    assert expand_env("s3://${ENVP_A}/eu-${ENVP_B:-west}", "f") == "s3://lake/eu-west"
    assert expand_env("${ENVP_B:-}", "f") == ""  # an explicit empty default is allowed


def test_unset_variable_is_a_spec_error_naming_field_and_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENVP_KEY", raising=False)
    spec = load_spec(write(tmp_path))
    with pytest.raises(SpecError) as err:
        spec.storage.resolved_options()
    assert "storage.options.KEY" in str(err.value) and "ENVP_KEY" in str(err.value)
    monkeypatch.setenv("ENVP_KEY", "")  # empty counts as unset: never an empty credential
    with pytest.raises(SpecError, match="ENVP_KEY"):
        spec.storage.resolved_options()
    monkeypatch.setenv("ENVP_KEY", "secret")
    assert spec.storage.resolved_options() == {"KEY": "secret", "PLAIN": "x"}
    assert "secret" not in spec.model_dump_json(), "credentials are read at run time, never stored"


def test_unset_variable_reads_its_file_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Docker's convention for secrets: ``${VAR}`` with VAR unset reads the file ``$VAR_FILE``
    names (a compose secret, a key volume); the variable itself wins when set; a file that
    cannot be read is one error naming the field, the variable and the path."""
    secret = tmp_path / "secret"
    secret.write_text("s3cr3t\n")
    monkeypatch.delenv("ENVP_KEY", raising=False)
    monkeypatch.setenv("ENVP_KEY_FILE", str(secret))
    spec = load_spec(write(tmp_path))
    assert spec.storage.resolved_options() == {"KEY": "s3cr3t", "PLAIN": "x"}
    monkeypatch.setenv("ENVP_KEY", "from-env")
    assert spec.storage.resolved_options()["KEY"] == "from-env"
    monkeypatch.delenv("ENVP_KEY")
    monkeypatch.setenv("ENVP_KEY_FILE", str(tmp_path / "missing"))
    with pytest.raises(SpecError) as err:
        spec.storage.resolved_options()
    assert "storage.options.KEY" in str(err.value) and "ENVP_KEY_FILE" in str(err.value) \
        and "missing" in str(err.value)
    secret.write_text("")  # an empty file is an unset variable: never an empty credential
    monkeypatch.setenv("ENVP_KEY_FILE", str(secret))
    with pytest.raises(SpecError, match="ENVP_KEY"):
        spec.storage.resolved_options()


def test_relative_paths_resolve_against_the_spec_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOCKSTEP_ROOT", raising=False)
    monkeypatch.delenv("ENVP_ROOT", raising=False)
    monkeypatch.delenv("ENVP_LANDING", raising=False)
    monkeypatch.chdir(tmp_path)
    spec = load_spec(write(tmp_path))
    proj = tmp_path / "proj"
    assert spec.root() == str(proj / "lake")
    assert spec.sources["orders"].path == str(proj / "landing" / "{region}" / "{ds}.csv")  # type: ignore[union-attr]
    assert spec.suites_dir() == proj / "suites"
    monkeypatch.setenv("ENVP_LANDING", "/data/in")
    monkeypatch.setenv("ENVP_ROOT", "s3://bucket/lake")
    spec = load_spec(write(tmp_path))
    assert spec.sources["orders"].path == "/data/in/{region}/{ds}.csv"  # type: ignore[union-attr]
    assert spec.root() == "s3://bucket/lake"


def test_unset_variable_in_a_source_path_fails_at_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = {**SPEC, "sources": {"orders": {"kind": "csv", "path": "${ENVP_NOPE}/{ds}.csv"}}}
    monkeypatch.delenv("ENVP_NOPE", raising=False)
    with pytest.raises(SpecError, match=r"sources\.orders\.path.*ENVP_NOPE"):
        load_spec(write(tmp_path, data))


def test_shipped_pipeline_loads_from_the_package_and_writes_under_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)  # no ./dags here: the package's copy answers
    monkeypatch.delenv("LOCKSTEP_ROOT", raising=False)
    spec = load_spec("fraud_features")
    assert spec.is_shipped and "templates" in str(spec.path)
    assert spec.root() == str(tmp_path / "lockstep-data")
    assert (spec.suites_dir() / "card_features.json").is_file()


def test_transform_from_the_spec_folder_module_and_file_forms(tmp_path: Path) -> None:
    from pipelines.features import load_transform

    proj = tmp_path / "team"
    (proj / "team_pkg").mkdir(parents=True)
    (proj / "team_pkg" / "__init__.py").write_text("")
    (proj / "team_pkg" / "feats.py").write_text("def fn(inputs, ctx):\n    return 'module'\n")
    (proj / "more").mkdir()
    (proj / "more" / "t.py").write_text("def fn(inputs, ctx):\n    return 'file'\n")
    data = {**SPEC, "tables": [*SPEC["tables"], {"name": "f1", "layer": "features"}, {"name": "f2", "layer": "features"}],
            "features": [{"name": "a", "transform": "team_pkg.feats:fn", "inputs": ["orders"], "output": "f1"},
                         {"name": "b", "transform": "more/t.py:fn", "inputs": ["orders"], "output": "f2"}]}
    path = proj / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    spec = load_spec(path)
    assert load_transform(spec.features[0])({}, None) == "module"  # type: ignore[arg-type]
    assert load_transform(spec.features[1])({}, None) == "file"  # type: ignore[arg-type]
