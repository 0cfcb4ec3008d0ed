"""The local stack's readiness probe (devstack.stack.http_status), which every stack the tests,
the benchmark and `make stack` start waits on."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from devstack.ports import free_port
from devstack.stack import http_status


@pytest.fixture
def echo_port() -> Iterator[int]:
    """A peer that sends back what it is sent, as a probe connected to itself reads its own request."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.sendall(conn.recv(4096))

    thread = threading.Thread(target=serve)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    server.close()


def test_a_peer_that_does_not_speak_http_is_not_ready(echo_port: int) -> None:
    # In CI a stack's start-up failed with "BadStatusLine: GET /readyz HTTP/1.1": the probe,
    # connected to itself on a port the server did not listen on yet, had read its own request.
    assert http_status(f"http://127.0.0.1:{echo_port}/readyz") == 0


def test_nothing_listening_is_not_ready() -> None:
    assert http_status(f"http://127.0.0.1:{free_port()}/readyz", timeout=0.5) == 0
