"""Running an HTTP service: uvicorn, with the bounds on a request's head that it lacks.

uvicorn reads a request line and headers for as long as a client cares to send them, and its
httptools parser accepts any size: a client inside the cluster (no ingress in front) could hold
connections open with a few bytes each, or send megabytes of headers. Here the head must arrive
within ``CLASSIFIER_HTTP_HEAD_TIMEOUT_S`` (10 s) of the connection (or of the request's first
byte, on a kept-alive connection) and be at most ``CLASSIFIER_HTTP_MAX_HEAD_BYTES`` (16 KiB);
otherwise the connection gets 408 or 431 and is closed. The ingress (nginx) applies the same
kind of bounds in front (client_header_timeout, large_client_header_buffers).
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from classifier_common.config import Settings

_HEAD_END = b"\r\n\r\n"


class BoundedHeadProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with the head of each request bounded in time and size."""

    head_timeout_s = 10.0
    max_head_bytes = 16 * 1024

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_bytes = 0  # received of the current request's head so far
        self._awaiting_head = True
        self._head_timer: asyncio.TimerHandle | None = self.loop.call_later(self.head_timeout_s, self._head_timed_out)

    def data_received(self, data: bytes) -> None:
        if self._awaiting_head:
            if self._head_timer is None:  # the first byte of a kept-alive connection's next request
                self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_timed_out)
            allowed = self.max_head_bytes - self._head_bytes
            self._head_bytes += len(data)
            # The head ends at the first blank line; 3 bytes of slack find one split across reads.
            if self._head_bytes > self.max_head_bytes and data.find(_HEAD_END, 0, max(allowed, 0) + 3) == -1:
                self._refuse(431, b"Request Header Fields Too Large")
                return
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._awaiting_head = False
        self._cancel_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._awaiting_head, self._head_bytes = True, 0

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._awaiting_head:
            self._refuse(408, b"Request Timeout")

    def _refuse(self, status: int, reason: bytes) -> None:
        self._cancel_head_timer()
        self._awaiting_head = False
        if not self.transport.is_closing():
            self.transport.write(b"HTTP/1.1 %d %s\r\ncontent-length: 0\r\nconnection: close\r\n\r\n" % (status, reason))
            self.transport.close()


def run(app: Any, settings: Settings, port: int) -> None:
    """Serve ``app`` until SIGTERM/SIGINT, as every service's entry point does."""
    protocol = type(
        "BoundedHeadProtocol",
        (BoundedHeadProtocol,),
        {"head_timeout_s": settings.http_head_timeout_s, "max_head_bytes": settings.http_max_head_bytes},
    )
    uvicorn.run(
        app,
        host=settings.host,
        port=port,
        http=protocol,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )
