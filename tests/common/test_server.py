"""The services' own HTTP protocol (classifier_common.server) over real sockets, in front of the
real gateway and results apps: a head that does not arrive in time is answered 408, one too large
431, one the parser cannot read 400, each in the one error body with its request id (the
client's X-Request-ID when the part of the head received has a sane one), echoed in X-Request-ID,
and the connection closed."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from classifier_common import server
from classifier_common.request_ids import MAX_REQUEST_ID_LENGTH
from classifier_common.store import open_store
from classifier_gateway.main import create_app as gateway_app
from classifier_results.main import create_app as results_app
from tests.utils.api import assert_error_shape
from tests.utils.jobs import queued_job
from tests.utils.queue_system import serving, settings_for

HEAD_TIMEOUT_S = 1.0
MAX_HEAD_BYTES = 4096
SERVICES: dict[str, Callable[..., Any]] = {"gateway": gateway_app, "results": results_app}
REQUEST_LINE = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
PARTIAL = REQUEST_LINE + b"X-Slow: "
# Long enough that the server reads what came before on its own.
PAUSE_S = 0.2


@pytest.fixture(scope="module", params=sorted(SERVICES))
def port(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, seeded: tuple[Path, Path]
) -> Iterator[int]:
    """The service's app served as its entry point serves it, with small bounds on the head."""
    settings = settings_for(
        seeded,
        store_url=f"sqlite:///{tmp_path_factory.mktemp(request.param)}/jobs.db",
        http_head_timeout_s=HEAD_TIMEOUT_S,
        http_max_head_bytes=MAX_HEAD_BYTES,
    )
    with serving(SERVICES[request.param](settings), http=server.bounded_head_protocol(settings)) as url:
        yield int(url.rsplit(":", 1)[1])


def _exchange(port: int, *parts: bytes) -> tuple[httpx.Response, float]:
    """Send ``parts`` PAUSE_S apart; return the answer that came back until the server closed, and
    how long after the last part it closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=HEAD_TIMEOUT_S + 10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i, part in enumerate(parts):
            if i:
                time.sleep(PAUSE_S)
            sock.sendall(part)
        sent = time.monotonic()
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return _parse(received), time.monotonic() - sent


def _parse(raw: bytes) -> httpx.Response:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    assert status_line.startswith("HTTP/1.1 "), raw[:200]
    headers = [tuple(part.strip() for part in line.split(":", 1)) for line in lines]
    return httpx.Response(int(status_line.split(" ", 2)[1]), headers=headers, content=body)


def _assert_refused(answer: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The one error body, as the services' refusals carry it, on a connection that closes."""
    body = assert_error_shape(answer, status, code)
    assert answer.headers["content-type"] == "application/json"
    assert int(answer.headers["content-length"]) == len(answer.content)
    assert answer.headers["connection"] == "close"
    return body


@pytest.mark.parametrize("sent", [b"", PARTIAL], ids=["silent", "partial"])
def test_a_head_that_never_ends_is_408_in_the_error_body(port: int, sent: bytes) -> None:
    answer, closed_after = _exchange(port, sent)
    body = _assert_refused(answer, 408, "request_timeout")
    assert body["error"]["message"] == f"the request head was not received within {HEAD_TIMEOUT_S:g} s"
    assert len(body["request_id"]) == 32  # a new one: the client sent none
    assert closed_after < HEAD_TIMEOUT_S + 1, f"open {closed_after:.1f} s"


def test_a_kept_alive_connections_next_head_that_never_ends_is_408(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=HEAD_TIMEOUT_S + 10) as sock:
        sock.sendall(REQUEST_LINE + b"\r\n")
        first = sock.recv(65536)
        sock.sendall(PARTIAL)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    assert first.startswith(b"HTTP/1.1 200 "), first[:200]
    _assert_refused(_parse(received), 408, "request_timeout")


@pytest.mark.parametrize(
    "sent",
    [REQUEST_LINE + b"X-Request-ID: trace-408\r\nX-Slow: ", REQUEST_LINE + b"X-Request-ID: trace-408\r\n"],
    ids=["then-more", "its-line-last"],
)
def test_a_408_echoes_the_request_id_the_client_sent(port: int, sent: bytes) -> None:
    answer, _ = _exchange(port, sent)
    assert _assert_refused(answer, 408, "request_timeout")["request_id"] == "trace-408"


def _big_head(request_id: bytes = b"trace-431") -> bytes:
    return REQUEST_LINE + b"X-Request-ID: " + request_id + b"\r\n" + b"X-Filler: " + b"a" * MAX_HEAD_BYTES + b"\r\n\r\n"


@pytest.mark.parametrize("reads", [1, 2], ids=["one-read", "two-reads"])
def test_an_oversized_head_is_431_in_the_error_body(port: int, reads: int) -> None:
    head = _big_head()
    parts = [head] if reads == 1 else [head[:1000], head[1000:]]
    answer, _ = _exchange(port, *parts)
    body = _assert_refused(answer, 431, "request_header_fields_too_large")
    assert body["error"]["message"] == f"the request head is larger than {MAX_HEAD_BYTES} bytes"
    assert body["error"]["details"] == {"max_head_bytes": MAX_HEAD_BYTES}
    assert body["request_id"] == "trace-431"


def test_a_request_id_that_is_not_sane_is_replaced(port: int) -> None:
    insane = b"x" * (MAX_REQUEST_ID_LENGTH + 1)
    answer, _ = _exchange(port, _big_head(insane))
    body = _assert_refused(answer, 431, "request_header_fields_too_large")
    assert body["request_id"] != insane.decode() and len(body["request_id"]) == 32


def test_an_unreadable_head_is_400_in_the_error_body(port: int) -> None:
    answer, _ = _exchange(port, REQUEST_LINE + b"X-Request-ID: trace-400\r\nAccept: */*\r\nno colon here\r\n\r\n")
    body = _assert_refused(answer, 400, "bad_request")
    assert body["request_id"] == "trace-400"
    # The id on the line right before the one the parser refuses (which httptools never hands over).
    answer, _ = _exchange(port, REQUEST_LINE + b"X-Request-ID: trace-401\r\nno colon here\r\n\r\n")
    assert _assert_refused(answer, 400, "bad_request")["request_id"] == "trace-401"


def test_a_head_whose_blank_line_is_split_across_reads_is_served(port: int) -> None:
    """The head fits, but the read that completes it carries enough body to pass the bound."""
    head = b"POST /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Request-ID: trace-split\r\nConnection: close\r\n"
    body = b"a" * MAX_HEAD_BYTES
    head += b"Content-Length: %d\r\nX-Filler: %s\r\n" % (len(body), b"a" * (MAX_HEAD_BYTES - 200 - len(head)))
    answer, _ = _exchange(port, head + b"\r", b"\n" + body)
    assert answer.status_code == 405, answer.text  # the app's answer: /healthz is GET only
    assert answer.headers["x-request-id"] == "trace-split"


def test_a_head_within_the_bound_is_served(port: int) -> None:
    head = REQUEST_LINE + b"X-Request-ID: trace-ok\r\nConnection: close\r\nX-Filler: " + b"a" * 3000 + b"\r\n\r\n"
    answer, _ = _exchange(port, head)
    assert answer.status_code == 200 and answer.json() == {"status": "ok"}
    assert answer.headers["x-request-id"] == "trace-ok"


@pytest.fixture(scope="module")
def long_poll(tmp_path_factory: pytest.TempPathFactory, seeded: tuple[Path, Path]) -> Iterator[tuple[int, str]]:
    """The results service over a store holding one queued job that nothing will finish: its port
    and the job's id (a long-poll on it answers only when its wait is over)."""
    store_url = f"sqlite:///{tmp_path_factory.mktemp('long-poll')}/jobs.db"
    store = open_store(store_url)
    job = store.create(queued_job())
    settings = settings_for(
        seeded, store_url=store_url, http_head_timeout_s=HEAD_TIMEOUT_S, http_max_head_bytes=MAX_HEAD_BYTES
    )
    with serving(results_app(settings), http=server.bounded_head_protocol(settings)) as url:
        yield int(url.rsplit(":", 1)[1]), job.id
    store.close()


def test_a_request_pipelined_behind_a_long_poll_gets_its_time_after_the_answer(long_poll: tuple[int, str]) -> None:
    """The head of a request sent behind one still being answered has its time from that answer's
    end: the long-poll, longer than the head bound, is answered, and only then the unfinished
    head times out."""
    port, job_id = long_poll
    wait_s = HEAD_TIMEOUT_S * 2.5
    poll = b"GET /v1/jobs/%s?wait=%g HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % (job_id.encode(), wait_s)
    with socket.create_connection(("127.0.0.1", port), timeout=wait_s + HEAD_TIMEOUT_S + 10) as sock:
        sock.sendall(poll)
        time.sleep(PAUSE_S)  # the long-poll is being answered when the next head begins
        sock.sendall(PARTIAL)
        sent = time.monotonic()
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        closed_after = time.monotonic() - sent
    first_head, _, rest = received.partition(b"\r\n\r\n")
    first = _parse(first_head + b"\r\n\r\n" + rest[: int(_parse(first_head + b"\r\n\r\n").headers["content-length"])])
    assert first.status_code == 200 and first.json()["status"] == "queued", received[:300]
    second = _parse(rest[len(first.content) :])
    _assert_refused(second, 408, "request_timeout")
    assert wait_s + HEAD_TIMEOUT_S - 0.5 < closed_after < wait_s + HEAD_TIMEOUT_S + 1.5, f"{closed_after:.1f} s"
