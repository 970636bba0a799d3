"""moto's server (as ``moto_server`` runs it) behind a request log: one JSON line per request
with its method, path, the access key id that signed it, the answer's status and the bytes
each way (Content-Length), written
whole under a lock (moto's own recorder interleaves large concurrent requests).

    python -m tests.distributed.moto_logged HOST PORT LOG_PATH
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple


class RequestLog:
    def __init__(self, app: Any, path: str) -> None:
        self.app, self.path, self.lock = app, path, threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        auth = environ.get("HTTP_AUTHORIZATION", "")
        key_id = auth.split("Credential=", 1)[1].split("/", 1)[0] if "Credential=" in auth else None
        entry: dict[str, Any] = {"method": environ.get("REQUEST_METHOD"), "path": environ.get("PATH_INFO", ""),
                                 "key_id": key_id, "bytes_in": int(environ.get("CONTENT_LENGTH") or 0)}

        def respond(status: str, headers: Any, *args: Any) -> Any:
            entry["status"] = int(status.split(" ", 1)[0])
            entry["bytes_out"] = next((int(v) for k, v in headers if k.lower() == "content-length"), 0)
            return start_response(status, headers, *args)

        result = self.app(environ, respond)
        if not entry["path"].startswith("/moto-api"):
            line = json.dumps(entry) + "\n"
            with self.lock, open(self.path, "a") as fh:
                fh.write(line)
        return result


def main() -> None:
    host, port, log = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(host, port, RequestLog(app, log), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
