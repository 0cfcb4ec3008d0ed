"""The worker's small HTTP port: /healthz, /readyz, /metrics, answered as the services answer
them: the same bodies, every error in the one error body with its request id (the client's
X-Request-ID when sane, else a new one, echoed in X-Request-ID), and the same bounds on a
request's head (classifier_common.server): all of it within ``head_timeout_s`` (else 408), at most
``max_head_bytes`` (else 431).

http.server's own timeout is a socket timeout, so it bounds each read, not the head: a client
sending a byte just under it every time would hold its thread for ever. Here each read waits only
for what is left of the head's deadline.
"""

from __future__ import annotations

import io
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from classifier_common.errors import error_body, head_too_large, head_too_slow, status_code_name
from classifier_common.request_ids import REQUEST_ID_HEADER, id_in_head, request_id_for

log = logging.getLogger(__name__)

PATHS = ("/healthz", "/readyz", "/metrics")
JSON = "application/json"
# (status, content type, body, more headers)
Answer = tuple[int, str, bytes, dict[str, str]]


class HeadDeadline(io.RawIOBase):
    """A connection's bytes, each read waiting at most until the deadline set by :meth:`restart`;
    past it, a read raises TimeoutError and :attr:`expired` is set. Between reads the socket keeps
    ``timeout_s`` as its timeout, which bounds the answer's writes."""

    def __init__(self, sock: socket.socket, timeout_s: float, kept_bytes: int):
        super().__init__()
        self._sock = sock
        self.timeout_s = timeout_s
        self.deadline = time.monotonic() + timeout_s
        self.expired = False
        self._kept_bytes = kept_bytes
        self.received = bytearray()  # what came since restart(), up to kept_bytes: the id of a 408

    def restart(self) -> None:
        self.deadline = time.monotonic() + self.timeout_s
        self.expired = False
        self.received.clear()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self.deadline - time.monotonic()
        if left <= 0:
            self.expired = True
            raise TimeoutError("the request head took too long")
        self._sock.settimeout(left)
        try:
            received = self._sock.recv_into(buffer)
            if len(self.received) < self._kept_bytes:
                self.received += memoryview(buffer)[:received]
            return received
        except TimeoutError:
            self.expired = True
            raise
        finally:
            self._sock.settimeout(self.timeout_s)


def serve(
    host: str,
    port: int,
    readiness: Callable[[], dict[str, str | None]],
    *,
    head_timeout_s: float = 10.0,
    max_head_bytes: int = 16 * 1024,
) -> ThreadingHTTPServer:
    """Serve the port from a daemon thread; ``readiness`` returns {check: None if fine, else why not}."""

    class Handler(BaseHTTPRequestHandler):
        timeout = head_timeout_s  # the socket's timeout between reads: it bounds an answer's writes
        # A request line without a version is answered with a status line and headers too (an
        # HTTP/0.9 answer is the bare body), so even a malformed request gets the error body's id.
        default_request_version = "HTTP/1.0"
        request_id: str | None = None

        def setup(self) -> None:
            super().setup()
            self.rfile.close()  # replaced by a reader bounded by the head's deadline
            self.head = HeadDeadline(self.connection, head_timeout_s, max_head_bytes)
            self.rfile = io.BufferedReader(self.head)

        def handle_one_request(self) -> None:
            """http.server's, but every method is dispatched (the services answer 405 to any
            method but GET), and a head that missed its deadline is answered 408."""
            self.head.restart()
            self.request_id = None
            self.command = self.requestline = self.request_version = ""
            try:
                self.raw_requestline = self.rfile.readline(65537)
                if len(self.raw_requestline) > 65536:
                    self.send_error(HTTPStatus.REQUEST_URI_TOO_LONG)
                elif not self.raw_requestline:
                    self.close_connection = True
                elif self.parse_request():
                    self._send(*self._answer())
                return
            except TimeoutError:
                if not self.head.expired:  # an answer's write timed out
                    self.close_connection = True
                    return
            except OSError:  # the client went away
                self.close_connection = True
                return
            self.request_id = request_id_for(id_in_head(bytes(self.head.received)))  # the client's, when sane
            try:
                self._send(*self._error(408, head_too_slow(head_timeout_s)))
            except OSError:
                pass

        def parse_request(self) -> bool:
            if not super().parse_request():
                return False
            self.request_id = request_id_for(self.headers.get(REQUEST_ID_HEADER))
            if len(self.requestline) + len(self.headers.as_bytes()) > max_head_bytes:
                self._send(*self._error(431, head_too_large(max_head_bytes), {"max_head_bytes": max_head_bytes}))
                return False
            return True

        def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
            """http.server's own refusals (400, 414, 431, 501, 505), in the one error body."""
            self._send(*self._error(code, message or HTTPStatus(code).phrase))

        def _answer(self) -> Answer:
            try:
                return self._route()
            except Exception:
                log.exception("the health port failed to answer %s", self.path)
                return self._error(500, "internal server error", code="internal_error")

        def _route(self) -> Answer:
            path = self.path.split("?", 1)[0]
            if path not in PATHS:
                return self._error(404, HTTPStatus.NOT_FOUND.phrase)
            if self.command != "GET":
                return self._error(405, HTTPStatus.METHOD_NOT_ALLOWED.phrase, headers={"Allow": "GET"})
            if path == "/healthz":
                return 200, JSON, json.dumps({"status": "ok"}).encode(), {}
            if path == "/readyz":
                checks = readiness()
                failing = {name: reason for name, reason in checks.items() if reason is not None}
                if failing:
                    message = "not ready: " + "; ".join(f"{k}: {v}" for k, v in failing.items())
                    return self._error(503, message, checks, code="not_ready")
                body = {"status": "ready", "checks": {name: "ok" for name in checks}}
                return 200, JSON, json.dumps(body).encode(), {}
            return 200, CONTENT_TYPE_LATEST, generate_latest(), {}

        def _error(
            self,
            status: int,
            message: str,
            details: Any = None,
            *,
            code: str | None = None,
            headers: dict[str, str] | None = None,
        ) -> Answer:
            self.close_connection = True
            body = error_body(code or status_code_name(status), message, details, self._request_id())
            return status, JSON, json.dumps(body).encode(), headers or {}

        def _request_id(self) -> str:
            if self.request_id is None:  # refused before its headers were read
                self.request_id = request_id_for(None)
            return self.request_id

        def _send(self, status: int, content_type: str, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header(REQUEST_ID_HEADER, self._request_id())
            for name, value in headers.items():
                self.send_header(name, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet access log
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="health-http", daemon=True).start()
    log.info("worker health/metrics on http://%s:%d", host, server.server_address[1])
    return server
