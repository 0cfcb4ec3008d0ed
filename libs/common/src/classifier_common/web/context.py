"""The request context: a request id for every request (echoed in X-Request-ID, carried into
logs and error bodies) and the request metrics by route template."""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from classifier_common import metrics
from classifier_common.logs import request_id_var
from classifier_common.request_ids import request_id_for
from classifier_common.web.errors import error_response

log = logging.getLogger(__name__)


class RequestContextMiddleware:
    """Pure ASGI: assigns the request id (or keeps a sane incoming X-Request-ID), echoes it in
    the response, and records request count and latency by route template."""

    def __init__(self, app: ASGIApp, service: str):
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = None
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        request_id = request_id_for(incoming)
        token = request_id_var.set(request_id)
        status_holder = {"status": 500, "started": False}
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                status_holder["started"] = True
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # Answered here, not by Starlette's outermost handler: there the request id is gone,
            # and a 500 must carry it like every other answer.
            log.exception("unhandled error")
            if status_holder["started"]:
                raise
            await error_response(500, "internal_error", "internal server error")(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            metrics.HTTP_REQUESTS.labels(self.service, template, method, str(status_holder["status"])).inc()
            metrics.HTTP_LATENCY.labels(self.service, template, method).observe(time.perf_counter() - started)
            request_id_var.reset(token)
