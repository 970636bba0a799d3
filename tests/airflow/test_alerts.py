"""Alerts through Airflow's notifier interface to a real SMTP server (aiosmtpd) and a real
HTTP receiver, both on loopback; credentials come from Airflow connections."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.spec import load_spec
from tests.airflow.test_ui import BLOCKED, CERTIFIED, build_lake, generation_of


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content, policy=policy.default)))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[int, _Mailbox]]:
    from aiosmtpd.controller import Controller

    from pipelines.airflow.embedded import free_port

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
    from pipelines.airflow.embedded import free_port
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


def lockstep(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The real CLI in a fresh process (Airflow imported only because the spec has targets)."""
    return subprocess.run([str(Path(sys.executable).parent / "lockstep"), *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=300)


def test_override_and_rollback_from_the_cli_alert_at_once(
    tmp_path: Path, smtp: tuple[int, _Mailbox], receiver: tuple[str, list[dict[str, Any]]],
) -> None:
    from pipelines.certify import decisions

    port, mailbox = smtp
    url, received = receiver
    env = {"AIRFLOW_CONN_LOCKSTEP_SMTP": json.dumps({"conn_type": "smtp", "host": "127.0.0.1", "port": port}),
           "AIRFLOW_CONN_LOCKSTEP_HOOK": json.dumps({"conn_type": "http", "host": url})}
    spec = build_lake(tmp_path, "alerts_ops")
    data = yaml.safe_load(Path(str(spec.path)).read_text())
    data["alerts"] = [{"kind": "smtp", "conn_id": "lockstep_smtp", "to": ["oncall@example.com"]},
                      {"kind": "webhook", "conn_id": "lockstep_hook"},
                      {"kind": "webhook", "conn_id": "stale_only_hook", "on": ["stale"]}]  # hears neither
    Path(str(spec.path)).write_text(yaml.safe_dump(data))

    until = (datetime.now(UTC) + timedelta(days=30)).replace(hour=0, minute=0, second=0, microsecond=0)
    done = lockstep("override", str(spec.path), "--date", BLOCKED, "--reason", "eu-central list accepted by risk",
                    "--generation", generation_of(spec, BLOCKED, "blocked"),
                    "--until", until.strftime("%Y-%m-%dT%H:%M"), env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    (override,) = [d for d in decisions(load_spec(Path(str(spec.path)))) if d.kind == "override" and d.interval == BLOCKED]
    rcpt, mail = mailbox.messages[-1]
    assert rcpt == ["oncall@example.com"]
    assert str(mail["Subject"]).startswith(f"[lockstep] OVERRIDE alerts_ops {BLOCKED} by ")
    assert "eu-central list accepted by risk" in str(mail["Subject"])
    body = mail.get_content()
    assert f"until {until:%Y-%m-%d} 00:00 UTC" in body and "parity.merchant_risk eu-central/merchant_risk" in body
    hook = received[-1]["json"]
    assert (hook["event"], hook["interval"], hook["decision_id"]) == ("override", BLOCKED, override.decision_id)
    assert hook["reason"] == "eu-central list accepted by risk" and hook["who"] == override.who
    assert hook["reasons"][0]["check_id"] == "parity.merchant_risk"

    done = lockstep("rollback", str(spec.path), "--to", generation_of(spec, CERTIFIED, "certified"),
                    "--reason", "bad features since the 2nd", "--pipeline-wide", "--yes", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert str(mailbox.messages[-1][1]["Subject"]).startswith(f"[lockstep] ROLLBACK alerts_ops to {CERTIFIED} by ")
    assert [r["json"]["event"] for r in received] == ["override", "rollback"]
    assert received[-1]["json"]["reason"] == "bad features since the 2nd"
    assert len(mailbox.messages) == 2


def test_an_override_whose_alert_fails_is_recorded_and_the_cli_says_so(
    tmp_path: Path, receiver: tuple[str, list[dict[str, Any]]],
) -> None:
    from pipelines.airflow.embedded import free_port
    from pipelines.certify import decisions

    url, received = receiver
    env = {"AIRFLOW_CONN_DEAD_SMTP": json.dumps({"conn_type": "smtp", "host": "127.0.0.1", "port": free_port()}),
           "AIRFLOW_CONN_LOCKSTEP_HOOK": json.dumps({"conn_type": "http", "host": url})}
    spec = build_lake(tmp_path, "alerts_dead_cli")
    data = yaml.safe_load(Path(str(spec.path)).read_text())
    data["alerts"] = [{"kind": "smtp", "conn_id": "dead_smtp", "to": ["a@example.com"]},
                      {"kind": "webhook", "conn_id": "lockstep_hook"}]
    Path(str(spec.path)).write_text(yaml.safe_dump(data))
    done = lockstep("override", str(spec.path), "--date", BLOCKED, "--reason", "accepted",
                    "--generation", generation_of(spec, BLOCKED, "blocked"), env=env)
    assert done.returncode == 1
    assert "override recorded, but 1 alert(s) failed: smtp dead_smtp" in " ".join(done.stderr.split())
    assert "Traceback" not in done.stderr
    assert any(d.kind == "override" and d.interval == BLOCKED for d in decisions(load_spec(Path(str(spec.path)))))
    assert [r["json"]["event"] for r in received] == ["override"]  # the other target still heard it
