"""The worker's small HTTP port: /healthz, /readyz, /metrics (the same shapes the services use)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

log = logging.getLogger(__name__)


def serve(
    host: str,
    port: int,
    readiness: Callable[[], dict[str, str | None]],
    *,
    head_timeout_s: float = 10.0,
    max_head_bytes: int = 16 * 1024,
) -> ThreadingHTTPServer:
    """``head_timeout_s`` and ``max_head_bytes``: the bounds every service puts on a request's
    head (classifier_common.server); the timeout holds for any read, the only ones being heads."""

    class Handler(BaseHTTPRequestHandler):
        timeout = head_timeout_s  # a socket timeout: a silent or slow client is disconnected

        def parse_request(self) -> bool:
            if not super().parse_request():
                return False
            if len(self.requestline) + len(self.headers.as_bytes()) > max_head_bytes:
                self.send_error(431, "Request Header Fields Too Large")
                return False
            return True

        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                self._send(200, "application/json", json.dumps({"status": "ok"}).encode())
            elif path == "/readyz":
                checks = readiness()
                failing = {k: v for k, v in checks.items() if v is not None}
                if failing:
                    body: dict[str, Any] = {
                        "error": {
                            "code": "not_ready",
                            "message": "; ".join(f"{k}: {v}" for k, v in failing.items()),
                            "details": checks,
                        },
                        "request_id": None,
                    }
                    self._send(503, "application/json", json.dumps(body).encode())
                else:
                    self._send(
                        200,
                        "application/json",
                        json.dumps({"status": "ready", "checks": {k: "ok" for k in checks}}).encode(),
                    )
            elif path == "/metrics":
                self._send(200, CONTENT_TYPE_LATEST, generate_latest())
            else:
                body = {"error": {"code": "not_found", "message": "Not Found", "details": None}, "request_id": None}
                self._send(404, "application/json", json.dumps(body).encode())

        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet access log
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="health-http", daemon=True).start()
    log.info("worker health/metrics on http://%s:%d", host, server.server_address[1])
    return server
