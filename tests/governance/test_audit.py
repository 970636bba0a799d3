"""The audit export: a day of decisions (certify, block, requests, approvals, override,
rollback) sent by `lockstep audit` through the OpenLineage provider's file transport, exactly
one RunEvent per decision; the timeline rebuilt from the events alone equals the control logs
row for row, and a second export sends nothing again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from pipelines.certify import decisions
from pipelines.control.tables import APPROVALS_TABLE
from pipelines.governance import Principal, approve, request_override, request_rollback
from pipelines.spec import load_spec
from tests.conftest import small_spec_data
from tests.governance.conftest import ADMIN, D2, governance, op

LOCKSTEP = str(Path(sys.executable).with_name("lockstep"))


def _export(spec_path: Path, root: str, events: Path, *extra: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__OPENLINEAGE", "OPENLINEAGE"))}
    env["AIRFLOW__OPENLINEAGE__TRANSPORT"] = json.dumps({"type": "file", "log_file_path": str(events), "append": True})
    done = subprocess.run([LOCKSTEP, "audit", str(spec_path), "--root", root, "--json", *extra], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_a_day_of_decisions_rebuilt_from_the_exported_events(lake: str, tmp_path: Path) -> None:
    from pipelines.airflow.audit import timeline_from_events

    spec_path = tmp_path / "governed.yaml"
    spec_path.write_text(yaml.safe_dump(small_spec_data(regions=3, rows=200, governance=governance())))
    spec = load_spec(spec_path)
    block = decisions(spec, root=lake)[-1]
    req = request_override(spec, op("alice"), D2, generation=block.generation_id, reason="vendor delay", root=lake)
    approve(spec, op("bob"), req.request_id, reason="checked", root=lake)
    approve(spec, ADMIN, req.request_id, reason="ok", root=lake)
    first = decisions(spec, root=lake)[0]
    back = request_rollback(spec, ADMIN, to=first.generation_id, reason="bad 2nd", root=lake, scope="pipeline")
    ann, ben, cid, dan = (Principal(n, "airflow", ADMIN.roles) for n in ("ann", "ben", "cid", "dan"))
    rejected = request_rollback(spec, ann, to=first.generation_id, reason="duplicate", root=lake,
                               scope="pipeline")
    approve(spec, ben, rejected.request_id, reason="dup", reject=True, root=lake)
    approve(spec, cid, back.request_id, reason="ok", root=lake)
    approve(spec, dan, back.request_id, reason="ok", root=lake)

    events_file = tmp_path / "audit.jsonl"
    sent = _export(spec_path, lake, events_file)["exported"]
    events = [json.loads(line) for line in events_file.read_text().splitlines() if line.strip()]
    log = decisions(spec, root=lake)
    approvals = APPROVALS_TABLE.scan(APPROVALS_TABLE.open(spec.lockstep_uri("approvals", lake))).collect()
    # exactly one event per decision of either log: 4 decisions, 2 + 2 + 1 + 3 approval events
    assert [d.kind for d in log] == ["gate", "gate", "override", "rollback"]
    assert len(events) == len(sent) == len(log) + approvals.height == 4 + 8
    assert len({e["run"]["runId"] for e in events}) == len(events)
    timeline = timeline_from_events(events, spec.name)
    decided = [r for r in timeline if r["log"] == "certifications"]
    assert [(r["log_version"], r["kind"], r["status"], r["actor"], r["generation"], r["reason"], r["digest"],
             r["decision_id"]) for r in decided] == \
        [(d.log_version, d.kind, d.status, d.who, d.generation_id, d.reason, d.digest, d.decision_id) for d in log]
    assert decided[2]["approvers"] == ["airflow:bob", "airflow:root-admin"] and decided[2]["actor"] == "airflow:alice"
    assert decided[3]["to_generation"] == first.generation_id and decided[3]["from_generation"] == log[2].generation_id
    consents = [r for r in timeline if r["log"] == "approvals"]
    expected = approvals.sort("log_version").select("log_version", "event", "action", "who", "reason",
                                                    "request_id", "generation_id", "digest")
    assert [(r["log_version"], r["kind"], r["status"], r["actor"], r["reason"], r["decision_id"], r["generation"],
             r["digest"]) for r in consents] == expected.rows()
    # every event names its log as the run's output, in OpenLineage's naming
    assert {e["outputs"][0]["name"].rsplit("/", 1)[-1] for e in events} == {"certifications", "approvals"}

    # exported once: a second export sends nothing; a new decision is sent alone
    assert _export(spec_path, lake, events_file)["exported"] == []
    later = request_override(spec, op("alice"), D2, generation=block.generation_id, reason="again",
                             root=lake, reinstate_older=True)
    day = later.requested_at.date().isoformat()
    assert [r["decision_id"] for r in _export(spec_path, lake, events_file, "--date", day)["exported"]] == \
        [later.request_id]
    assert len(events_file.read_text().splitlines()) == 13


def test_without_a_transport_the_export_refuses_and_records_nothing(lake: str, tmp_path: Path) -> None:
    spec_path = tmp_path / "governed.yaml"
    spec_path.write_text(yaml.safe_dump(small_spec_data(regions=3, rows=200, governance=governance())))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__OPENLINEAGE", "OPENLINEAGE"))}
    done = subprocess.run([LOCKSTEP, "audit", str(spec_path), "--root", lake], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "AIRFLOW__OPENLINEAGE__TRANSPORT" in lines[0] and "Traceback" not in done.stderr
    assert not Path(load_spec(spec_path).lockstep_uri("audit_exports", lake)).exists()
