"""The worker's health/metrics port (classifier_worker.health) over real sockets: the whole
request head has one deadline, so a client trickling bytes is dropped with 408 while others are
served; and every error answer is the one error body with its request id, echoed in X-Request-ID."""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from classifier_worker import health
from devstack.ports import free_port

HEAD_TIMEOUT_S = 1.0
MAX_HEAD_BYTES = 4096
# Well under the head timeout: a timeout per read would never fire between these bytes.
TRICKLE_EVERY_S = 0.2
PARTIAL = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def _parse(raw: bytes) -> Answer:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    assert status_line.startswith("HTTP/1."), raw[:200]
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Answer(int(status_line.split(" ", 2)[1]), headers, body)


def _exchange(port: int, request: bytes) -> Answer:
    """Send ``request``; return what came back until the server closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=HEAD_TIMEOUT_S + 10) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return _parse(received)


def _get(port: int, path: str, *headers: str, method: str = "GET") -> Answer:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *headers, "", ""]
    return _exchange(port, "\r\n".join(lines).encode("latin-1"))


def _assert_error(answer: Answer, status: int, code: str) -> dict[str, Any]:
    assert answer.status == status, answer
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert set(body) == {"error", "request_id"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert body["error"]["code"] == code and body["error"]["message"], body
    assert body["request_id"] and body["request_id"] == answer.headers["x-request-id"], (body, answer.headers)
    return body


@pytest.fixture(scope="module")
def checks() -> dict[str, str | None]:
    """What the server's readiness returns: a test may change it, and puts it back."""
    return {"models": None, "broker": None}


@pytest.fixture(scope="module")
def port(checks: dict[str, str | None]) -> Iterator[int]:
    port = free_port()
    server = health.serve(
        "127.0.0.1", port, lambda: dict(checks), head_timeout_s=HEAD_TIMEOUT_S, max_head_bytes=MAX_HEAD_BYTES
    )
    yield port
    server.shutdown()
    server.server_close()


def _trickle(port: int, until_s: float) -> tuple[bytes, float]:
    """Send a head one byte every TRICKLE_EVERY_S, for at most ``until_s`` seconds, stopping as
    soon as the server answers or closes; return what came back and when the connection ended,
    in seconds after it was opened."""
    with socket.create_connection(("127.0.0.1", port), timeout=until_s + 10) as sock:
        opened = time.monotonic()
        head = PARTIAL + b"a" * 1000
        sent = 0
        while time.monotonic() - opened < until_s:
            if select.select([sock], [], [], TRICKLE_EVERY_S)[0]:
                break  # the server answered or closed
            sock.sendall(head[sent : sent + 1])
            sent += 1
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received, time.monotonic() - opened


def test_a_trickled_head_is_dropped_at_its_deadline_while_others_are_served(port: int) -> None:
    trickled: list[tuple[bytes, float]] = []
    trickler = threading.Thread(target=lambda: trickled.append(_trickle(port, until_s=HEAD_TIMEOUT_S * 5)))
    trickler.start()
    try:
        started = time.monotonic()
        while trickler.is_alive() and time.monotonic() - started < HEAD_TIMEOUT_S * 6:
            assert _get(port, "/healthz").status == 200  # answered meanwhile
            time.sleep(0.05)
    finally:
        trickler.join(HEAD_TIMEOUT_S * 10)
    ((received, lasted),) = trickled
    assert lasted < HEAD_TIMEOUT_S + 0.5, f"a client trickling bytes held the connection {lasted:.1f} s"
    body = _assert_error(_parse(received), 408, "request_timeout")
    assert f"{HEAD_TIMEOUT_S:g} s" in body["error"]["message"]
    assert _get(port, "/healthz").json() == {"status": "ok"}  # and afterwards


def test_a_408_carries_the_request_id_the_client_sent_before_its_deadline(port: int) -> None:
    """As the services do: the head's whole X-Request-ID line came, so the answer is the client's."""
    sent = b"GET /healthz HTTP/1.1\r\nX-Request-ID: slow-7\r\n" + PARTIAL.split(b"\r\n", 1)[1]
    answer = _exchange(port, sent)
    assert _assert_error(answer, 408, "request_timeout")["request_id"] == "slow-7"
    cut = _exchange(port, b"GET /healthz HTTP/1.1\r\nX-Request-ID: slow-")  # the line never ended: a new id
    assert _assert_error(cut, 408, "request_timeout")["request_id"] not in ("slow-", "slow-7")


@pytest.mark.parametrize("sent", [b"", PARTIAL], ids=["silent", "partial"])
def test_a_head_that_never_ends_is_408(port: int, sent: bytes) -> None:
    started = time.monotonic()
    _assert_error(_exchange(port, sent), 408, "request_timeout")
    assert time.monotonic() - started < HEAD_TIMEOUT_S + 0.5


@pytest.mark.parametrize(
    ("request_bytes", "status", "code"),
    [
        (b"GET /nowhere HTTP/1.1\r\n\r\n", 404, "not_found"),
        (b"POST /healthz HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405, "method_not_allowed"),
        (b"DELETE /metrics HTTP/1.1\r\n\r\n", 405, "method_not_allowed"),
        (b"BREW /readyz HTTP/1.1\r\n\r\n", 405, "method_not_allowed"),
        (b"not a request line\r\n\r\n", 400, "bad_request"),
        (b"GET /healthz HTTP/9.9\r\n\r\n", 505, "http_version_not_supported"),
        (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", 414, "request_uri_too_long"),
        (b"GET /healthz HTTP/1.1\r\nX-Filler: " + b"a" * MAX_HEAD_BYTES + b"\r\n\r\n", 431, None),
        (b"GET /healthz HTTP/1.1\r\n" + b"X-Many: 1\r\n" * 120 + b"\r\n", 431, None),
    ],
    ids=["404", "405-post", "405-delete", "405-unknown-method", "400", "505", "414", "431-size", "431-count"],
)
def test_every_error_is_the_one_error_body(port: int, request_bytes: bytes, status: int, code: str | None) -> None:
    _assert_error(_exchange(port, request_bytes), status, code or "request_header_fields_too_large")


def test_405_names_the_allowed_method(port: int) -> None:
    answer = _get(port, "/healthz", "Content-Length: 0", method="POST")
    assert answer.headers["allow"] == "GET"
    head = _get(port, "/healthz", method="HEAD")  # the services answer HEAD 405 too, without a body
    assert head.status == 405 and head.headers["allow"] == "GET" and head.body == b""


def test_not_ready_is_503_with_the_checks(port: int, checks: dict[str, str | None]) -> None:
    checks["models"] = "loading models"
    try:
        body = _assert_error(_get(port, "/readyz", "X-Request-ID: probe-1"), 503, "not_ready")
    finally:
        checks["models"] = None
    assert body["request_id"] == "probe-1"
    assert body["error"]["details"] == {"models": "loading models", "broker": None}
    assert "models: loading models" in body["error"]["message"]
    assert _get(port, "/readyz").json() == {"status": "ready", "checks": {"models": "ok", "broker": "ok"}}


def test_a_readiness_check_that_raises_is_500() -> None:
    def readiness() -> dict[str, str | None]:
        raise RuntimeError("the check itself failed")

    server = health.serve("127.0.0.1", free_port(), readiness, head_timeout_s=HEAD_TIMEOUT_S)
    try:
        port = server.server_address[1]
        body = _assert_error(_get(port, "/readyz"), 500, "internal_error")
        assert "the check itself failed" not in body["error"]["message"]  # logged, not shown
        assert _get(port, "/healthz").status == 200
    finally:
        server.shutdown()
        server.server_close()


def test_the_request_id_is_the_clients_when_sane(port: int) -> None:
    ok = _get(port, "/healthz", "X-Request-ID: trace-42")
    assert ok.status == 200 and ok.headers["x-request-id"] == "trace-42"
    assert _assert_error(_get(port, "/nowhere", "X-Request-ID: trace-43"), 404, "not_found")["request_id"] == "trace-43"
    for insane in ("x" * 65, "tab\there"):
        body = _assert_error(_get(port, "/nowhere", f"X-Request-ID: {insane}"), 404, "not_found")
        assert body["request_id"] != insane and len(body["request_id"]) == 32
    first, second = _get(port, "/healthz"), _get(port, "/healthz")
    assert first.headers["x-request-id"] != second.headers["x-request-id"]  # a new one each time
