"""Running an HTTP service: uvicorn, with the bounds on a request's head that it lacks.

uvicorn reads a request line and headers for as long as a client cares to send them, and its
httptools parser accepts any size: a client inside the cluster (no ingress in front) could hold
connections open with a few bytes each, or send megabytes of headers. Here the head must arrive
within ``CLASSIFIER_HTTP_HEAD_TIMEOUT_S`` (10 s) of the connection (or of the request's first
byte, on a kept-alive connection; of the previous answer's end, for a request pipelined behind
one still being answered) and be at most ``CLASSIFIER_HTTP_MAX_HEAD_BYTES`` (16 KiB);
otherwise the connection gets 408 or 431 and is closed. A head the parser cannot read gets 400.
Each of these answers is the one error body, with the client's X-Request-ID when the part of the
head received has a sane one (else a new one), echoed in X-Request-ID. The ingress (nginx)
applies the same kind of bounds in front (client_header_timeout, large_client_header_buffers).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from http import HTTPStatus
from typing import Any

import httptools
import uvicorn
from uvicorn.main import STARTUP_FAILURE
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from classifier_common.config import Settings
from classifier_common.errors import error_body, head_too_large, head_too_slow, status_code_name
from classifier_common.request_ids import REQUEST_ID_HEADER, id_in_head, request_id_for
from classifier_common.waiter import release_all

_HEAD_END = b"\r\n\r\n"
_REQUEST_ID_NAME = REQUEST_ID_HEADER.lower().encode("ascii")


class BoundedHeadProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with the head of each request bounded in time and size, and
    its own refusals in the one error body."""

    head_timeout_s = 10.0
    max_head_bytes = 16 * 1024

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_bytes = 0  # received of the current request's head so far
        self._head = bytearray()  # its bytes, up to max_head_bytes: the id of a head the parser refused
        self._awaiting_head = True
        self._head_timer: asyncio.TimerHandle | None = None
        self._start_head_timer()

    def data_received(self, data: bytes) -> None:
        if not self._awaiting_head:
            super().data_received(data)
            return
        if self._head_timer is None and self._answered():  # a kept-alive connection's next request
            self._start_head_timer()
        allowed = max(self.max_head_bytes - self._head_bytes, 0)
        self._head_bytes += len(data)
        self._head += data[:allowed]
        # The head ends at the first blank line; 3 bytes of slack find one split across reads.
        if self._head_bytes <= self.max_head_bytes or data.find(_HEAD_END, 0, allowed + 3) != -1:
            super().data_received(data)
            return
        # The parser reads what fits of the head (the answer echoes its X-Request-ID), and no more.
        super().data_received(data[:allowed])
        if self._awaiting_head and self._head_bytes > self.max_head_bytes:
            self._refuse(431, head_too_large(self.max_head_bytes), {"max_head_bytes": self.max_head_bytes})
        elif not self.transport.is_closing():  # its blank line began in the last read: the head fit
            self.data_received(data[allowed:])

    def on_headers_complete(self) -> None:
        self._awaiting_head = False
        self._cancel_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._awaiting_head, self._head_bytes = True, 0
        self._head.clear()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # A pipelined request's head that began while the previous answer was still being made
        # (a long-poll) has its time from now on: a 408 then never stands in for that answer.
        if self._awaiting_head and self._head_bytes and self._head_timer is None and not self.transport.is_closing():
            self._start_head_timer()

    def _answered(self) -> bool:
        """Whether the connection's last request has had its whole answer (or there was none)."""
        return self.cycle is None or self.cycle.response_complete

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request its parser cannot read (a plain-text 400, until here)."""
        self._refuse(400, "the request head is not valid HTTP")

    def _start_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._awaiting_head:
            self._refuse(408, head_too_slow(self.head_timeout_s))

    def _refuse(self, status: int, message: str, details: Any = None) -> None:
        """Answer ``status`` in the one error body, and close the connection."""
        self._cancel_head_timer()
        self._awaiting_head = False
        if self.transport.is_closing():
            return
        request_id = self._request_id()
        body = json.dumps(error_body(status_code_name(status), message, details, request_id)).encode()
        head = [b"HTTP/1.1 %d %s\r\n" % (status, HTTPStatus(status).phrase.encode("ascii"))]
        head += [name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers]
        head.append(
            b"content-type: application/json\r\ncontent-length: %d\r\n%s: %s\r\nconnection: close\r\n\r\n"
            % (len(body), _REQUEST_ID_NAME, request_id.encode("latin-1"))
        )
        self.transport.write(b"".join(head) + body)
        self.transport.close()

    def _request_id(self) -> str:
        """The client's X-Request-ID among the headers received, when sane; else a new one."""
        # httptools hands a header line over only when the next one begins: a byte of a header
        # name hands over the last complete one (or is an error; the connection closes anyway).
        with contextlib.suppress(httptools.HttpParserError):
            self.parser.feed_data(b"X")
        incoming = next((value for name, value in self.headers or () if name == _REQUEST_ID_NAME), None)
        if incoming is None:
            # The line right before one the parser refused is never handed over: the raw head has it.
            return request_id_for(id_in_head(bytes(self._head)))
        return request_id_for(incoming.decode("latin-1"))


class _Server(uvicorn.Server):
    """uvicorn's server, which on SIGTERM first answers the requests waiting for a job (a
    submit-and-wait, a long-poll) with the job as it stands: they would otherwise hold the
    shutdown for up to 30 s and then be cut off when the grace period below ends."""

    async def shutdown(self, sockets: Any = None) -> None:
        release_all()
        await super().shutdown(sockets)


def run(app: Any, settings: Settings, port: int) -> None:
    """Serve ``app`` until SIGTERM/SIGINT, as every service's entry point does."""
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=port,
        http=bounded_head_protocol(settings),
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    server = _Server(config)
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)  # as uvicorn.run does: the port was taken, or start-up failed


def bounded_head_protocol(settings: Settings) -> type[BoundedHeadProtocol]:
    """:class:`BoundedHeadProtocol` with the settings' bounds."""
    bounds = {"head_timeout_s": settings.http_head_timeout_s, "max_head_bytes": settings.http_max_head_bytes}
    return type("BoundedHeadProtocol", (BoundedHeadProtocol,), bounds)
