"""The settings object (pipelines.spec.settings): the environment read when asked, never written.

``settings()`` reflects ``LOCKSTEP_*`` as they are at the call (an empty variable is unset), a
spec's root follows it, and running a command with ``--debug`` changes nothing in the
process's environment and leaves no flag behind for the next command.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipelines.errors import SpecError
from pipelines.spec import load_spec
from pipelines.spec.settings import settings
from tests.test_bad_input import cli


def test_settings_reflect_the_environment_at_call_time(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("LOCKSTEP_ROOT", "LOCKSTEP_DEBUG", "LOCKSTEP_ACTOR"):
        monkeypatch.delenv(name, raising=False)
    spec = load_spec("fraud_features")
    own = spec.root()
    assert settings().root is None and settings().debug is False

    monkeypatch.setenv("LOCKSTEP_ROOT", str(tmp_path / "a"))
    assert settings().root == str(tmp_path / "a")
    assert spec.root() == str(tmp_path / "a")
    monkeypatch.setenv("LOCKSTEP_ROOT", str(tmp_path / "b"))
    assert settings().root == str(tmp_path / "b")  # read now, not cached from the first call
    assert spec.root() == str(tmp_path / "b")
    assert spec.root("/override") == "/override"  # --root still wins
    monkeypatch.setenv("LOCKSTEP_ROOT", "")  # empty: unset
    assert settings().root is None and spec.root() == own
    monkeypatch.delenv("LOCKSTEP_ROOT")
    assert spec.root() == own

    monkeypatch.setenv("LOCKSTEP_ACTOR", "ana")
    assert settings().user() == "ana" and settings().who() == "local:ana"
    for value, on in (("1", True), ("true", True), ("0", False), ("off", False), ("", False)):
        monkeypatch.setenv("LOCKSTEP_DEBUG", value)
        assert settings().debug is on, value


def test_secrets_never_print_and_an_unreadable_value_is_a_spec_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.spec import settings as module

    monkeypatch.setenv("LOCKSTEP_AIRFLOW_PASSWORD", "s3cret")
    password = settings().airflow_password
    assert password is not None and password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings())

    class Strict(module.Settings):
        port: int = 0

    monkeypatch.setattr(module, "Settings", Strict)
    monkeypatch.setenv("LOCKSTEP_PORT", "eighty")
    with pytest.raises(SpecError, match="LOCKSTEP_PORT"):
        settings()


def test_hash_key_from_its_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``LOCKSTEP_HASH_KEY_FILE`` (a Docker secret) stands in for an unset ``LOCKSTEP_HASH_KEY``;
    the variable wins when both are set; an unreadable file is one error naming it."""
    key = tmp_path / "hash_key"
    key.write_text("ab" * 32 + "\n")
    monkeypatch.delenv("LOCKSTEP_HASH_KEY", raising=False)
    monkeypatch.setenv("LOCKSTEP_HASH_KEY_FILE", str(key))
    got = settings().hash_key
    assert got is not None and got.get_secret_value() == "ab" * 32
    monkeypatch.setenv("LOCKSTEP_HASH_KEY", "cd" * 32)
    got = settings().hash_key
    assert got is not None and got.get_secret_value() == "cd" * 32
    monkeypatch.delenv("LOCKSTEP_HASH_KEY")
    monkeypatch.setenv("LOCKSTEP_HASH_KEY_FILE", str(tmp_path / "missing"))
    with pytest.raises(SpecError, match="LOCKSTEP_HASH_KEY_FILE=.*missing: cannot read it"):
        settings()


def test_debug_flag_leaves_the_environment_unchanged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOCKSTEP_DEBUG", raising=False)
    before = dict(os.environ)
    debug = cli("--debug", "generate", str(tmp_path / "out"), "--format", "xyz", "--rows", "5")
    assert isinstance(debug.exception, ValueError), repr(debug.exception)  # --debug: the traceback
    assert dict(os.environ) == before
    # the flag lived as long as its command: the next one without it is one line again
    plain = cli("generate", str(tmp_path / "out"), "--format", "xyz", "--rows", "5")
    assert plain.exit_code == 1 and not isinstance(plain.exception, ValueError), repr(plain.exception)
    assert plain.stderr.strip().startswith("error: internal error: ValueError")
    assert dict(os.environ) == before


#: the only modules that may read the process environment, and why (README's Layout says so too)
ENVIRONMENT_READERS = {
    "pipelines/spec/settings.py": "the one Settings object (LOCKSTEP_*)",
    "pipelines/spec/resolve.py": "${VAR} references a spec makes itself",
    "pipelines/validation/gx.py": "GX's own analytics switch, set before GX is imported",
    "pipelines/models/registry.py": "MLflow's telemetry switch; its URIs and S3 key, for one registry call only",
    "pipelines/airflow/embedded/harness.py": "the environment of the Airflow processes it starts",
    "pipelines/airflow/embedded/up.py": "the environment of the Airflow processes it starts",
}


def _reads_environment(path: Path) -> bool:
    import ast

    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "putenv", "unsetenv"):
            return True
        if isinstance(node, ast.ImportFrom) and node.module == "os" and any(
                a.name in ("environ", "getenv") for a in node.names):
            return True
    return False


def test_the_environment_is_read_only_by_settings_and_the_glue_that_must() -> None:
    """`grep os.environ` finds the settings module and the documented glue, nothing else."""
    repo = Path(__file__).resolve().parents[1]
    readers = {
        str(p.relative_to(repo)) for folder in ("pipelines", "dags", "plugins")
        for p in (repo / folder).rglob("*.py") if _reads_environment(p)
    }
    assert readers == set(ENVIRONMENT_READERS), sorted(readers ^ set(ENVIRONMENT_READERS))
    for module in ENVIRONMENT_READERS:
        assert "environ" in (repo / module).read_text().split('"""')[1], f"{module}'s docstring says why it reads it"
