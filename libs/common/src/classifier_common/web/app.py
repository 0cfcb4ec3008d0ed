"""A FastAPI app with what every service shares: the error handlers, the request context, CORS
when configured, and the docs page served offline."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from classifier_common.request_ids import REQUEST_ID_HEADER
from classifier_common.web.context import RequestContextMiddleware
from classifier_common.web.docs import offline_docs
from classifier_common.web.errors import install_error_handlers

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
    offline_docs(app, docs_url, openapi_url, title)
    return app
