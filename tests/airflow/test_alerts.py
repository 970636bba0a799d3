"""Alerts through Airflow's notifier interface to a real SMTP server (aiosmtpd) and a real
HTTP receiver, both on loopback; credentials come from Airflow connections."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.spec import load_spec
from tests.airflow.test_ui import BLOCKED, build_lake


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content, policy=policy.default)))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[int, _Mailbox]]:
    from aiosmtpd.controller import Controller

    from pipelines.airflow.local import free_port

    box = _Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller.port, box
    finally:
        controller.stop()


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append({"path": self.path, "auth": self.headers.get("Authorization"),
                             "token": self.headers.get("X-Token"), "json": json.loads(body)})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks/lockstep", received
    finally:
        server.shutdown()
        server.server_close()


def test_blocked_and_stale_alerts_reach_smtp_and_webhook(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, smtp: tuple[int, _Mailbox],
    receiver: tuple[str, list[dict[str, Any]]],
) -> None:
    from pipelines.airflow.alerts import after_gate
    from pipelines.certify import decisions

    port, mailbox = smtp
    url, received = receiver
    monkeypatch.setenv("AIRFLOW_CONN_LOCKSTEP_SMTP", json.dumps(
        {"conn_type": "smtp", "host": "127.0.0.1", "port": port}))
    monkeypatch.setenv("AIRFLOW_CONN_LOCKSTEP_HOOK", json.dumps(
        {"conn_type": "http", "host": url, "login": "ops", "password": "s3cret-pass",
         "extra": {"headers": {"X-Token": "t0ken-123"}}}))
    spec = build_lake(tmp_path, "alerts_demo")
    data = yaml.safe_load(Path(str(spec.path)).read_text())
    data["alerts"] = [{"kind": "smtp", "conn_id": "lockstep_smtp", "to": ["oncall@example.com"]},
                      {"kind": "webhook", "conn_id": "lockstep_hook"}]
    data["consumers"] = [{"name": "fraud_model_scoring", "tables": ["card_features"], "max_staleness": "1d"}]
    Path(str(spec.path)).write_text(yaml.safe_dump(data))
    spec = load_spec(Path(str(spec.path)))

    blocked = next(d for d in decisions(spec) if d.interval == BLOCKED and not d.certified)
    result = {"status": "blocked", "generation_id": blocked.generation_id, "reasons": blocked.reasons}
    assert after_gate(spec, BLOCKED, result, {}) == []

    subjects = [str(m["Subject"]).strip() for _, m in mailbox.messages]
    assert subjects[0] == "[lockstep] BLOCKED alerts_demo 2026-01-02: parity.merchant_risk eu-central/merchant_risk"
    assert "lockstep explain alerts_demo --date 2026-01-02" in mailbox.messages[0][1].get_content()
    assert mailbox.messages[0][0] == ["oncall@example.com"]
    assert subjects[1].startswith("[lockstep] STALE alerts_demo: fraud_model_scoring")

    events = [r["json"] for r in received]
    assert [e["event"] for e in events] == ["blocked", "stale"]
    assert events[0]["reasons"][0]["region"] == "eu-central" and events[0]["interval"] == BLOCKED
    assert events[1]["consumers"][0]["consumer"] == "fraud_model_scoring"
    assert received[0]["path"] == "/hooks/lockstep" and received[0]["token"] == "t0ken-123"
    assert received[0]["auth"].startswith("Basic ")


def test_an_unreachable_target_is_reported_and_does_not_stop_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, receiver: tuple[str, list[dict[str, Any]]],
) -> None:
    from pipelines.airflow.alerts import send
    from pipelines.airflow.local import free_port
    from pipelines.spec import AlertTarget

    url, received = receiver
    monkeypatch.setenv("AIRFLOW_CONN_DEAD_SMTP", json.dumps({"conn_type": "smtp", "host": "127.0.0.1",
                                                             "port": free_port()}))
    monkeypatch.setenv("AIRFLOW_CONN_LOCKSTEP_HOOK", json.dumps({"conn_type": "http", "host": url}))
    spec = build_lake(tmp_path, "alerts_dead").model_copy(update={"alerts": [
        AlertTarget(kind="smtp", conn_id="dead_smtp", to=["a@example.com"]),
        AlertTarget(kind="webhook", conn_id="lockstep_hook")]})
    errors = send(spec, "blocked", "s", "t", {"event": "blocked"})
    assert len(errors) == 1 and errors[0].startswith("smtp dead_smtp")
    assert [r["json"]["event"] for r in received] == ["blocked"]
