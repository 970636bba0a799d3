"""A StatsD receiver that serves what it received as Prometheus text, for compose's ``statsd``
service (the Prometheus statsd exporter has no Debian package; this is the part of it a
deployment needs to see Airflow's and Lockstep's metrics off the workers)::

    python statsd_receiver.py --udp 0.0.0.0:9125 --http 0.0.0.0:9102
    curl -s localhost:9102/metrics | grep lockstep

StatsD lines (``name:value|c|@rate``, ``|g`` with ``+``/``-`` deltas, ``|ms``, ``|h``,
``|d``; several per datagram; DogStatsD ``|#tags`` ignored) become Prometheus samples named
after the StatsD name with every character outside ``[a-zA-Z0-9_:]`` replaced by ``_``:
counters as ``<name>_total``, gauges as ``<name>``, timers as a summary
(``<name>_count``, ``<name>_sum`` in seconds). A malformed line is counted in
``statsd_receiver_bad_lines_total`` and otherwise ignored.

It is also the deployment's default alert sink: the spec's webhook alert target posts its
JSON to ``/alerts``; each is printed (``docker compose logs statsd``), counted in
``lockstep_alerts_total``, and the last 1000 are served back on ``GET /alerts``. In
production point the alert connection at your paging or chat webhook instead. Only the
standard library.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_NAME = re.compile(r"[^a-zA-Z0-9_:]")


class Store:
    """The metrics received so far (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counters: dict[str, float] = {}
        self.gauges: dict[str, float] = {}
        self.timers: dict[str, tuple[int, float]] = {}  # name -> (count, sum in seconds)
        self.bad = 0
        self.alerts: list[dict[str, object]] = []

    def line(self, raw: str) -> None:
        try:
            name, _, rest = raw.partition(":")
            fields = rest.split("|")
            value, kind = fields[0], fields[1]
            rate = 1.0
            for extra in fields[2:]:
                if extra.startswith("@"):
                    rate = float(extra[1:]) or 1.0
            metric = _NAME.sub("_", name.strip())
            if not metric or metric[0].isdigit():
                raise ValueError(name)
            number = float(value)
        except (ValueError, IndexError):
            with self.lock:
                self.bad += 1
            return
        with self.lock:
            if kind == "c":
                self.counters[metric] = self.counters.get(metric, 0.0) + number / rate
            elif kind == "g":
                if value[:1] in "+-":
                    self.gauges[metric] = self.gauges.get(metric, 0.0) + number
                else:
                    self.gauges[metric] = number
            elif kind in ("ms", "h", "d"):
                count, total = self.timers.get(metric, (0, 0.0))
                self.timers[metric] = (count + 1, total + (number / 1000.0 if kind == "ms" else number))
            else:
                self.bad += 1

    def datagram(self, data: bytes) -> None:
        for raw in data.decode("utf-8", "replace").splitlines():
            if raw.strip():
                self.line(raw.strip())

    def render(self) -> str:
        out: list[str] = []
        with self.lock:
            for name, value in sorted(self.counters.items()):
                out += [f"# TYPE {name}_total counter", f"{name}_total {value:g}"]
            for name, value in sorted(self.gauges.items()):
                out += [f"# TYPE {name} gauge", f"{name} {value:g}"]
            for name, (count, total) in sorted(self.timers.items()):
                out += [f"# TYPE {name} summary", f"{name}_count {count}", f"{name}_sum {total:g}"]
            out += ["# TYPE statsd_receiver_bad_lines_total counter", f"statsd_receiver_bad_lines_total {self.bad}",
                    "# TYPE lockstep_alerts_total counter", f"lockstep_alerts_total {len(self.alerts)}"]
        return "\n".join(out) + "\n"


def _address(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host or "0.0.0.0", int(port)


def serve(udp: tuple[str, int], http: tuple[str, int], store: Store | None = None) -> None:
    store = store or Store()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(udp)

    def receive() -> None:
        while True:
            data, _ = sock.recvfrom(65535)
            store.datagram(data)

    threading.Thread(target=receive, name="statsd-udp", daemon=True).start()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, body: bytes, content_type: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            path = self.path.split("?")[0]
            if path == "/metrics":
                self._answer(store.render().encode(), "text/plain; version=0.0.4")
            elif path == "/alerts":
                with store.lock:
                    body = json.dumps(store.alerts).encode()
                self._answer(body, "application/json")
            else:
                self.send_error(404, "GET /metrics or /alerts")

        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            if self.path.split("?")[0] != "/alerts":
                self.send_error(404, "POST /alerts")
                return
            try:
                alert = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                if not isinstance(alert, dict):
                    raise ValueError("not a JSON object")
            except ValueError as exc:
                self.send_error(400, f"an alert is one JSON object: {exc}")
                return
            with store.lock:
                store.alerts = [*store.alerts[-999:], alert]
            print(f"alert: {alert.get('subject') or alert.get('event')}", flush=True)
            self._answer(b"{}", "application/json")

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's signature
            pass  # a scrape every few seconds is not news

    server = ThreadingHTTPServer(http, Handler)
    print(f"statsd receiver: UDP {udp[0]}:{udp[1]}, Prometheus text on http://{http[0]}:{http[1]}/metrics", flush=True)
    server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--udp", default="0.0.0.0:9125", help="host:port to receive StatsD on")
    parser.add_argument("--http", default="0.0.0.0:9102", help="host:port to serve /metrics on")
    args = parser.parse_args(argv)
    try:
        serve(_address(args.udp), _address(args.http))
    except (OSError, ValueError) as exc:
        print(f"statsd receiver: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
