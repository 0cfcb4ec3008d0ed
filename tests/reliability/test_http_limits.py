"""A request's head bounded in time and size on every service's own port (what a client inside
the cluster reaches without the ingress): a connection that sends part of a head, or nothing,
is answered 408 and closed once CLASSIFIER_HTTP_HEAD_TIMEOUT_S (10 s) has passed; a head over
CLASSIFIER_HTTP_MAX_HEAD_BYTES (16 KiB) is refused with 431. Both in the one error body, with the
request id in it and in X-Request-ID. The processes are the real entry points (python -m
classifier_gateway / classifier_results / classifier_worker)."""

from __future__ import annotations

import json
import re
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from classifier_common.config import Settings
from devstack.stack import Stack

DEFAULTS = Settings()
PARTIAL = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


def big_head(kib: int) -> bytes:
    """A request head of at least ``kib`` KiB: each header well under any per-line limit (3 KB),
    together over the head limit."""
    head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Request-ID: trace-big-head\r\n"
    while len(head) < kib * 1024:
        head += b"X-Filler-%d: %s\r\n" % (head.count(b"\n"), b"a" * 3_000)
    return head + b"\r\n"


FITTING_HEAD = (
    b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nX-Filler: " + b"a" * 8_000 + b"\r\n\r\n"
)


def _ports(stack: Stack) -> dict[str, int]:
    return {"gateway": stack.gateway_port, "results": stack.results_port, "worker": stack.worker_port}


def _exchange(port: int, head: bytes, then: bytes = b"") -> tuple[bytes, float]:
    """Send ``head`` (and, once its answer came, ``then`` on the same connection); return all
    that came back until the server closed, and how long after the last send it closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=DEFAULTS.http_head_timeout_s + 20) as sock:
        received = b""
        try:
            sock.sendall(head)
            if then:
                received = sock.recv(65536)  # the first answer (small: /healthz)
                sock.sendall(then)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before all of it was sent
        sent = time.monotonic()
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
        return received, time.monotonic() - sent


def _error_body(name: str, answer: bytes, status: int) -> dict[str, Any]:
    """The one error body of ``answer``, after checking its status and that X-Request-ID names its request id."""
    head, _, body = answer.partition(b"\r\n\r\n")
    assert re.match(rb"HTTP/1\.[01] %d " % status, head), (name, answer[:200])
    headers = dict(line.lower().split(b": ", 1) for line in head.split(b"\r\n")[1:])
    assert headers[b"content-type"] == b"application/json", (name, answer[:400])
    error = json.loads(body)
    assert error["error"]["code"] and error["error"]["message"], (name, error)
    assert headers[b"x-request-id"].decode() == error["request_id"], (name, answer[:400])
    return error


def _on_every_port(stack: Stack, head: bytes) -> dict[str, tuple[bytes, float]]:
    with ThreadPoolExecutor(3) as pool:
        futures = {name: pool.submit(_exchange, port, head) for name, port in _ports(stack).items()}
        return {name: future.result() for name, future in futures.items()}


def test_a_partial_or_missing_head_is_closed_after_the_head_timeout(shared_stack: Stack) -> None:
    limit = DEFAULTS.http_head_timeout_s
    tries = {f"{name}, partial": (port, PARTIAL, b"") for name, port in _ports(shared_stack).items()}
    tries |= {f"{name}, silent": (port, b"", b"") for name, port in _ports(shared_stack).items()}
    # On a kept-alive connection: a complete request, then part of the next one.
    first = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    tries |= {f"{name}, kept alive": (port, first, PARTIAL) for name, port in _ports(shared_stack).items()}
    del tries["worker, kept alive"]  # http.server closes after each answer
    with ThreadPoolExecutor(len(tries)) as pool:
        futures = {name: pool.submit(_exchange, *args) for name, args in tries.items()}
        results = {name: future.result() for name, future in futures.items()}
    for name, (answer, closed_after) in results.items():
        assert closed_after < limit + 5, f"{name}: open {closed_after:.1f} s"
        last = answer[answer.rfind(b"HTTP/1.") :]  # on a kept-alive connection, after the first answer
        assert _error_body(name, last, 408)["error"]["code"] == "request_timeout"


@pytest.mark.parametrize("kib", [30, 70, 90])
def test_an_oversized_head_is_431(shared_stack: Stack, kib: int) -> None:
    for name, (answer, _) in _on_every_port(shared_stack, big_head(kib)).items():
        error = _error_body(name, answer, 431)
        assert error["error"]["code"] == "request_header_fields_too_large" and error["request_id"] == "trace-big-head"


def test_a_head_within_the_limit_is_served(shared_stack: Stack) -> None:
    for name, (answer, _) in _on_every_port(shared_stack, FITTING_HEAD).items():
        assert answer.split(b" ", 2)[1] == b"200", (name, answer[:200])
