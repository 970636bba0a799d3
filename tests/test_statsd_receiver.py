"""docker/statsd_receiver.py: StatsD datagrams over real UDP on loopback, read back as
Prometheus text over real HTTP (what compose's ``statsd`` service serves)."""

from __future__ import annotations

import importlib.util
import socket
import threading
import time

import httpx

from pipelines.airflow.embedded import free_port
from tests.conftest import REPO


def _module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("statsd_receiver", REPO / "docker" / "statsd_receiver.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_statsd_lines_are_served_as_prometheus_text() -> None:
    mod = _module()
    udp, http = free_port(), free_port()
    store = mod.Store()
    threading.Thread(target=mod.serve, args=(("127.0.0.1", udp), ("127.0.0.1", http), store), daemon=True).start()
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    lines = [
        b"airflow.lockstep.fraud_features.gate.certified:1|c",
        b"airflow.lockstep.fraud_features.gate.certified:1|c|@0.5\nairflow.pool.open_slots.default:128|g",
        b"airflow.pool.open_slots.default:-28|g",
        b"airflow.lockstep.fraud_features.stage.gate.duration:250|ms",
        b"airflow.lockstep.fraud_features.stage.gate.duration:750|ms|#region:eu",
        b"not a statsd line",
    ]

    def scrape() -> str:
        try:
            return httpx.get(f"http://127.0.0.1:{http}/metrics", timeout=2).text
        except httpx.HTTPError:  # not serving yet
            return ""

    # up and receiving (a datagram sent before the socket is bound is dropped): a probe first
    deadline = time.monotonic() + 10
    while "probe_total" not in scrape():
        assert time.monotonic() < deadline, "the receiver never counted a probe"
        sender.sendto(b"probe:1|c", ("127.0.0.1", udp))
        time.sleep(0.05)
    for line in lines:  # once each, in order: the bad line last, so once it is counted every earlier one is
        sender.sendto(line, ("127.0.0.1", udp))
    while "statsd_receiver_bad_lines_total 1" not in (text := scrape()):
        assert time.monotonic() < deadline + 10, text
        time.sleep(0.05)
    sender.close()
    metrics = dict(line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
    # a counter sums (a sampled one counts 1/rate), a gauge keeps its last value and its deltas,
    # a timer is a summary in seconds
    assert float(metrics["airflow_lockstep_fraud_features_gate_certified_total"]) == 3
    assert float(metrics["airflow_pool_open_slots_default"]) == 100
    assert int(metrics["airflow_lockstep_fraud_features_stage_gate_duration_count"]) == 2
    assert float(metrics["airflow_lockstep_fraud_features_stage_gate_duration_sum"]) == 1.0
    assert int(metrics["statsd_receiver_bad_lines_total"]) == 1
    assert httpx.get(f"http://127.0.0.1:{http}/other", timeout=2).status_code == 404
    # the alert sink: a webhook alert is kept, counted and served back; a body that is no JSON
    # object is refused
    alert = {"event": "blocked", "pipeline": "fraud_features", "subject": "[lockstep] BLOCKED"}
    assert httpx.post(f"http://127.0.0.1:{http}/alerts", json=alert, timeout=2).status_code == 200
    assert httpx.post(f"http://127.0.0.1:{http}/alerts", content=b"[1]", timeout=2).status_code == 400
    assert httpx.get(f"http://127.0.0.1:{http}/alerts", timeout=2).json() == [alert]
    assert "lockstep_alerts_total 1" in httpx.get(f"http://127.0.0.1:{http}/metrics", timeout=2).text
