"""What every HTTP service shares: the one error body, request ids, request metrics, and the
/healthz, /readyz and /metrics routes.

Error body, for every 4xx and 5xx of every service::

    {"error": {"code": "unknown_model", "message": "...", "details": ...}, "request_id": "..."}
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from http import HTTPStatus
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from classifier_common import metrics
from classifier_common.errors import ClassifierError
from classifier_common.logging import request_id_var

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
DEFAULT_RETRY_AFTER_S = 5
PUBLIC_5XX_MESSAGES = {
    "broker_unavailable": "the job queue is unreachable right now",
    "store_unavailable": "the job store is unreachable right now",
}


ERROR_RESPONSE_SCHEMA: dict[str, Any] = {
    "description": "Error",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["error", "request_id"],
                "properties": {
                    "error": {
                        "type": "object",
                        "required": ["code", "message"],
                        "properties": {
                            "code": {"type": "string"},
                            "message": {"type": "string"},
                            "details": {},
                        },
                    },
                    "request_id": {"type": ["string", "null"]},
                },
            }
        }
    },
}


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "details": details}, "request_id": request_id_var.get()}
    return JSONResponse(body, status_code=status, headers=headers)


def _jsonable_validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors():
        out.append({"loc": list(err.get("loc", ())), "msg": err.get("msg"), "type": err.get("type")})
    return out


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path. Starlette's own 405 names only the methods
    of the first route whose path matches, but GET and DELETE /v1/jobs/{id} are two routes."""
    routes = request.app.router.routes
    return [
        method
        for method in _METHODS
        if any(route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes)
    ]


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ClassifierError)
    async def _domain(_: Request, exc: ClassifierError) -> JSONResponse:
        retry_after = exc.retry_after
        if retry_after is None and exc.status_code in (429, 503):
            retry_after = DEFAULT_RETRY_AFTER_S  # every 429/503 tells the client when to come back
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        if exc.status_code >= 500:
            # The cause (host names, file paths) goes to the log, not to the client.
            log.warning("request refused: %s", exc.message, extra={"error_code": exc.code})
            message = PUBLIC_5XX_MESSAGES.get(exc.code, "the service is temporarily unavailable")
            return error_response(exc.status_code, exc.code, message, None, headers)
        return error_response(exc.status_code, exc.code, exc.message, exc.details, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _jsonable_validation_errors(exc)
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(part) for part in first["loc"])
        return error_response(422, "invalid_request", f"{where}: {first['msg']}", errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_")
        message = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            headers = {**(headers or {}), "Allow": ", ".join(_allowed_methods(request))}
        return error_response(exc.status_code, code, message, None, headers)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return error_response(500, "internal_error", "internal server error")


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
        request_id = incoming if incoming and len(incoming) <= 64 and incoming.isprintable() else uuid.uuid4().hex
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


def health_router(
    ready_checks: Callable[[], dict[str, str | None]], on_scrape: Callable[[], None] | None = None
) -> APIRouter:
    """``ready_checks`` returns {dependency: None if fine, else the reason it is not};
    ``on_scrape`` refreshes gauges that are read from elsewhere (the store) just before a scrape."""
    router = APIRouter(tags=["health"])

    @router.get("/healthz", summary="Alive")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", summary="Dependencies reachable and models loaded")
    def readyz() -> Response:
        checks = ready_checks()
        failing = {name: reason for name, reason in checks.items() if reason is not None}
        if failing:
            return error_response(
                503, "not_ready", "not ready: " + "; ".join(f"{k}: {v}" for k, v in failing.items()), checks
            )
        return JSONResponse({"status": "ready", "checks": {name: "ok" for name in checks}})

    @router.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
    def prometheus_metrics() -> Response:
        if on_scrape is not None:
            on_scrape()
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


SWAGGER_DIR = Path(__file__).parent / "swagger"


def _offline_docs(app: FastAPI, docs_url: str, openapi_url: str, title: str) -> None:
    """Swagger UI served from the package (swagger-ui-dist, vendored): FastAPI's default page
    loads it from a CDN, which fails offline and behind firewalls."""
    assets = f"{docs_url}/assets"
    app.mount(assets, StaticFiles(directory=SWAGGER_DIR), name=f"{docs_url}-assets")

    @app.get(docs_url, include_in_schema=False)
    def docs() -> Response:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} - API docs",
            swagger_js_url=f"{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{assets}/swagger-ui.css",
            swagger_favicon_url=f"{assets}/favicon-32x32.png",
        )


# What a browser page on an allowed origin may send and read (CORS).
CORS_METHODS = ["GET", "POST", "DELETE"]
CORS_REQUEST_HEADERS = ["Content-Type", "Authorization", "X-API-Key", "Idempotency-Key", REQUEST_ID_HEADER]
CORS_EXPOSED_HEADERS = ["Location", "Retry-After", "Idempotent-Replayed", REQUEST_ID_HEADER]


def create_app(
    service: str,
    title: str,
    description: str,
    *,
    docs_url: str = "/docs",
    openapi_url: str = "/openapi.json",
    cors_origins: list[str] | None = None,
    **kwargs: Any,
) -> FastAPI:
    """``cors_origins`` (Settings.cors_origins): the web origins whose pages may call this API
    from a browser, ``["*"]`` for any; empty, no cross-origin call is allowed. API keys travel in
    headers, never cookies, so credentialed cross-origin requests are not allowed either."""
    app = FastAPI(
        title=title,
        description=description,
        version="1.0.0",
        docs_url=None,
        redoc_url=None,
        openapi_url=openapi_url,
        **kwargs,
    )
    install_error_handlers(app)
    if cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=cors_origins,
            allow_methods=CORS_METHODS,
            allow_headers=CORS_REQUEST_HEADERS,
            expose_headers=CORS_EXPOSED_HEADERS,
            max_age=600,
        )
    # Added last, so outermost: every answer, a CORS preflight's too, carries the request id.
    app.add_middleware(RequestContextMiddleware, service=service)
    _offline_docs(app, docs_url, openapi_url, title)
    return app
