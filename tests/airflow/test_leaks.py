"""The leak scan of a demo day: no raw card id or transaction id in any output of Lockstep.

The day is the flagship's 12 regions with the demo's faults on one day: sa-east delivers
transactions twice (the uniqueness check on ``txn_id`` fails with its unexpected values,
the duplicates are quarantined past the cap: the generation blocks), ap-south keeps a stale
merchant risk list (parity names the differing keys) and us-west's amounts shift. Then every
output is scanned (:mod:`tests.leakscan`): the control tables and every file under
``_lockstep`` (evidence, Data Docs), ``explain`` and ``status`` (``--json`` and text), the
blocked alert a real webhook receiver got, the OpenLineage events of every step written by
OpenLineage's file transport, and every log line of the run.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pipelines.demo import with_control_file, with_faults, write_control_file
from pipelines.runner import run_interval
from pipelines.spec import AlertTarget, FaultSpec, Interval, load_spec
from tests.airflow.test_alerts import receiver  # noqa: F401 (the fixture)
from tests.leakscan import Personal, scan

DAY = date(2026, 1, 1)
FAULTS = [
    FaultSpec(kind="duplicates", regions=["sa-east"], dates=[DAY], magnitude=5.0),
    FaultSpec(kind="stale_reference", regions=["ap-south"], dates=[DAY]),
    FaultSpec(kind="drift", regions=["us-west"], dates=[DAY], magnitude=1.0),
]
ROWS = 400


def _lineage(spec: Any, interval: Interval, root: str, run_id: str, path: Path) -> None:
    """Every step's OpenLineage event, as the extractor builds it, through the file transport."""
    import uuid

    from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
    from openlineage.client.transport.file import FileConfig, FileTransport

    from pipelines.airflow.lineage import complete_lineage

    transport = FileTransport(FileConfig(log_file_path=str(path), append=True))
    steps = [(step, region) for region in spec.regions for step in ("ingest", "validate_inputs", "transform", "validate")]
    for step, region in [*steps, ("reconcile", None), ("gate", None)]:
        ol = complete_lineage(spec, step, region, interval, root=root, run_id=run_id).to_operator_lineage(spec)
        transport.emit(RunEvent(eventType=RunState.COMPLETE, eventTime=datetime.now(UTC).isoformat(),
                                run=Run(runId=str(uuid.uuid4())), job=Job(namespace="lockstep-test", name=f"{spec.name}.{step}"),
                                inputs=ol.inputs, outputs=ol.outputs, producer="lockstep-tests"))


def test_no_raw_personal_value_in_any_output_of_a_demo_day(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    receiver: tuple[str, list[dict[str, Any]]],  # noqa: F811
) -> None:
    from pipelines.airflow.alerts import after_gate
    from pipelines.cli import _register, app

    url, received = receiver
    monkeypatch.setenv("AIRFLOW_CONN_LOCKSTEP_HOOK", json.dumps({"conn_type": "http", "host": url}))
    monkeypatch.delenv("LOCKSTEP_HASH_KEY", raising=False)  # the quickstart's key under the control root
    root = str(tmp_path / "lake")
    spec = load_spec("fraud_features")
    spec = spec.model_copy(update={"alerts": [AlertTarget(kind="webhook", conn_id="lockstep_hook")]}).with_path(spec.path)
    faulty = with_control_file(with_faults(spec, FAULTS, ROWS))
    interval = Interval.for_date(DAY)
    caplog.set_level(logging.DEBUG)

    write_control_file(faulty, DAY, root=root)
    run = run_interval(faulty, interval, root=root)
    assert run.decision is not None and run.decision.status == "blocked"
    blocking = {r["check_id"] for r in run.decision.reasons}
    assert {"transactions.quarantine_cap", "parity.merchant_risk"} <= blocking, blocking
    result = {"status": "blocked", "generation_id": run.decision.generation_id, "reasons": run.decision.reasons}
    assert after_gate(faulty, interval.key, result, {}) == []
    assert received, "the webhook got the blocked alert"
    _lineage(faulty, interval, root, run.run_id, tmp_path / "lineage.jsonl")

    _register()
    outputs: dict[str, str] = {}
    for cmd in (["explain"], ["explain", "--json"], ["status"], ["status", "--json"]):
        res = CliRunner().invoke(app, [cmd[0], "fraud_features", "--root", root, *(["--date", DAY.isoformat()]
                                       if cmd[0] == "explain" else []), *cmd[1:]], terminal_width=250)
        assert res.exit_code == 0, res.output
        outputs[" ".join(cmd)] = res.output
    outputs["webhook bodies"] = json.dumps([r["json"] for r in received])
    outputs["log lines"] = "\n".join(r.getMessage() for r in caplog.records)
    assert not (Path(root) / "fraud_features" / "_lockstep" / ".lockstep-hash-key").exists(), \
        "the key stays out of the control plane"

    values = Personal.of_source(faulty, [interval])
    assert values.txn_ids and values.card_ids
    leaks = scan(values, control_root=root, files=[tmp_path / "lineage.jsonl"], texts=outputs)
    assert not leaks, {place: sorted(v)[:3] for place, v in leaks.items()}
    # not by leaving the checks out: the failed uniqueness check is explained, its unexpected
    # transaction ids shown as keyed hashes
    assert "transactions.column_values_to_be_unique[txn_id]" in outputs["explain --json"]
    assert "hmac:" in outputs["explain --json"]
