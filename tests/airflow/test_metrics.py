"""Metrics through Airflow's Stats to a real UDP listener on loopback (StatsD wire format)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.airflow.test_ui import BLOCKED, build_lake


@pytest.fixture
def statsd_listener(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A UDP socket on loopback, and Airflow's Stats pointed at it as ``[metrics]`` says."""
    from airflow.sdk.observability import stats
    from airflow.sdk.observability.metrics import stats_utils

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    for key, value in {"STATSD_ON": "True", "STATSD_HOST": "127.0.0.1", "STATSD_PORT": str(sock.getsockname()[1]),
                       "STATSD_PREFIX": "airflow"}.items():
        monkeypatch.setenv(f"AIRFLOW__METRICS__{key}", value)
    # what the Task SDK's task runner does at start-up
    stats.initialize(factory=stats_utils.get_stats_factory(), export_legacy_names=False)
    try:
        yield sock
    finally:
        sock.close()
        stats.initialize(factory=stats_utils.get_stats_factory(), export_legacy_names=False)


def _drain(sock: socket.socket) -> list[str]:
    lines: list[str] = []
    sock.settimeout(2)
    while True:
        try:
            data = sock.recv(65535)
        except TimeoutError:
            return lines
        lines += data.decode().splitlines()


def test_steps_and_the_gate_reach_statsd(statsd_listener: socket.socket, tmp_path: Path) -> None:
    from pipelines.airflow.metrics import emit_step
    from pipelines.certify import decisions
    from pipelines.runner import StepPayload, run_step
    from pipelines.spec import Interval

    spec = build_lake(tmp_path, "metrics_demo")
    iv = Interval.for_date(BLOCKED)
    payload = StepPayload(spec=str(spec.path), step="ingest", region="eu-central", interval_start=iv.start,
                          interval_end=iv.end, run_id="metrics-test")
    emit_step(spec.name, "ingest", 1.5, run_step(payload))
    blocked = next(d for d in decisions(spec) if d.interval == BLOCKED and not d.certified)
    emit_step(spec.name, "gate", 0.25, {"status": "blocked", "generation_id": blocked.generation_id,
                                        "reasons": blocked.reasons})
    lines = _drain(statsd_listener)
    assert "airflow.lockstep.metrics_demo.stage.ingest.duration:1500.000000|ms" in lines
    assert "airflow.lockstep.metrics_demo.gate.blocked:1|c" in lines
    assert "airflow.lockstep.metrics_demo.blocked_checks.parity.eu-central:1|c" in lines
    rows = [line for line in lines if line.startswith("airflow.lockstep.metrics_demo.rows.eu-central.raw.")]
    assert rows and all(line.endswith("|g") and int(line.split(":")[1].split("|")[0]) > 0 for line in rows)
