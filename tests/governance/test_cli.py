"""The governed CLI: on a governed spec, `lockstep override` records a request that takes
effect with two other people's `lockstep approve`, every decision recorded as local:<user>;
where the spec's governance.allow_local is off, a decision made on storage is refused with
the reason and the `--via airflow` alternative, before anything is written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.certify import decisions
from pipelines.governance import APPROVALS
from pipelines.spec import load_spec
from pipelines.storage import lockstep_uri
from tests.conftest import small_spec_data
from tests.governance.conftest import D2, governance
from tests.test_bad_input import cli, one_clear_line


def _spec_file(tmp_path: Path, **overrides: Any) -> Path:
    path = tmp_path / "governed.yaml"
    path.write_text(yaml.safe_dump(small_spec_data(regions=3, rows=200, governance=governance(**overrides))))
    return path


def _as(monkeypatch: pytest.MonkeyPatch, user: str, *args: str) -> Any:
    monkeypatch.setenv("LOCKSTEP_ACTOR", user)
    return cli(*args)


def test_override_by_request_and_two_local_approvals(lake: str, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    path = _spec_file(tmp_path)
    spec = load_spec(path)
    block = decisions(spec, root=lake)[-1]
    res = _as(monkeypatch, "alice", "override", str(path), "--date", D2.ds, "--generation", block.generation_id,
              "--reason", "vendor delay", "--root", lake, "--json")
    assert res.exit_code == 0, res.output
    req = json.loads(res.stdout)
    assert req["state"] == "pending" and req["requester"] == "local:alice" and req["digest"] == block.digest
    assert len(decisions(spec, root=lake)) == 2

    approve = ["approve", str(path), req["request_id"], "--reason", "checked", "--root", lake]
    one_clear_line(_as(monkeypatch, "alice", *approve), "local:alice requested", "cannot approve their own")
    assert _as(monkeypatch, "bob", *approve).exit_code == 0
    one_clear_line(_as(monkeypatch, "bob", *approve), "local:bob approved", "already")
    res = _as(monkeypatch, "carol", *approve, "--json")
    assert res.exit_code == 0, res.output
    done = json.loads(res.stdout)
    assert done["state"] == "decided"
    decision = decisions(spec, root=lake)[-1]
    assert decision.decision_id == done["decision_id"] and decision.kind == "override"
    assert decision.who == "local:alice"
    assert decision.bindings["approval"]["approvers"] == ["local:bob", "local:carol"]
    listed = json.loads(cli("requests", str(path), "--all", "--root", lake, "--json").stdout)
    assert [(r["request_id"], r["state"]) for r in listed] == [(req["request_id"], "decided")]
    assert json.loads(cli("requests", str(path), "--root", lake, "--json").stdout) == []


def test_where_allow_local_is_off_decisions_on_storage_are_refused(lake: str, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    path = _spec_file(tmp_path, allow_local=False)
    spec = load_spec(path)
    block = decisions(spec, root=lake)[-1]
    for args in (["override", str(path), "--date", D2.ds, "--generation", block.generation_id, "--reason", "r"],
                 ["rollback", str(path), "--to", decisions(spec, root=lake)[0].generation_id, "--reason", "r"],
                 ["certify", str(path), "--date", D2.ds],
                 ["run", str(path), "--date", D2.ds],
                 ["backfill", str(path), "--start", D2.ds, "--end", D2.ds],
                 ["approve", str(path), "req-1", "--reason", "r"]):
        line = one_clear_line(_as(monkeypatch, "mallory", *args, "--root", lake), "as local:mallory",
                              "governance.allow_local is off", "--via airflow")
        res = _as(monkeypatch, "mallory", *args, "--root", lake, "--json")
        assert json.loads(res.stdout)["error"]["message"] == line.removeprefix("error: ")
    # nothing was written: no request, no decision
    assert not Path(lockstep_uri(lake, spec.name, APPROVALS)).exists()
    assert len(decisions(spec, root=lake)) == 2
    # LOCKSTEP_ACTOR cannot claim a verified identity: it is recorded as local
    ungoverned = tmp_path / "ungoverned.yaml"
    ungoverned.write_text(yaml.safe_dump(small_spec_data(regions=3, rows=200)))
    res = _as(monkeypatch, "airflow:admin", "override", str(ungoverned), "--date", D2.ds,
              "--generation", block.generation_id, "--reason", "r", "--root", lake, "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["who"] == "local:airflow:admin"
