"""The REST client's waits on a busy api-server: an answer later than the client's timeout
is "not yet", asked again until the wait's deadline (a 12-region run under load once failed
the e2e test on one 30 s read timeout while the run went on to succeed). Against a loopback
HTTP server that stalls its first answers, speaking the routes the client calls."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from pipelines.airflow.client import AirflowClient
from pipelines.errors import LockstepError

RUN = "/api/v2/dags/d/dagRuns/r"


class _Stalling(ThreadingHTTPServer):
    daemon_threads = True
    stalls = 0          # how many GETs of the run stall before one is answered
    state = "success"
    seen = 0

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Stalling

    def log_message(self, *args: Any) -> None:
        return None

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._answer(201, {"access_token": "t"})

    def do_GET(self) -> None:  # noqa: N802
        if self.path != RUN:
            self._answer(404, {"detail": "not found"})
            return
        self.server.seen += 1
        if self.server.seen <= self.server.stalls:
            time.sleep(1.5)  # past the client's 0.5 s timeout
        self._answer(200, {"state": self.server.state})


@pytest.fixture
def server() -> Iterator[_Stalling]:
    srv = _Stalling()
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


def _client(srv: _Stalling) -> AirflowClient:
    return AirflowClient(f"http://127.0.0.1:{srv.server_address[1]}", "admin", "pw", timeout=0.5)


def test_a_late_answer_is_asked_again_until_the_run_is_seen(server: _Stalling) -> None:
    server.stalls = 2
    assert _client(server).wait_for_run("d", "r", timeout=30, poll=0.05) == "success"
    assert server.seen == 3


def test_answers_that_never_come_in_time_fail_at_the_deadline_saying_so(server: _Stalling) -> None:
    server.stalls = 10**6
    client = _client(server)
    t0 = time.monotonic()
    with pytest.raises(LockstepError, match=r"timed out after 2s waiting for run 'r' of 'd'; the last request timed out"):
        client.wait_for(lambda: client.dag_run("d", "r"), timeout=2, poll=0.05, what="run 'r' of 'd'")
    assert 2 <= time.monotonic() - t0 < 10 and server.seen >= 2


def test_any_other_error_still_fails_the_wait_at_once(server: _Stalling) -> None:
    client = _client(server)
    t0 = time.monotonic()
    with pytest.raises(LockstepError, match="404"):
        client.wait_for(lambda: client.dag_run("d", "missing"), timeout=30, poll=0.05, what="a missing run")
    assert time.monotonic() - t0 < 5
