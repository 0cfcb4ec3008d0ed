"""The one error body of every service, and the handlers that map every exception to it.

Error body, for every 4xx and 5xx of every service::

    {"error": {"code": "unknown_model", "message": "...", "details": ...}, "request_id": "..."}
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from classifier_common.errors import ClassifierError, error_body, status_code_name
from classifier_common.logs import request_id_var

log = logging.getLogger(__name__)

DEFAULT_RETRY_AFTER_S = 5
PUBLIC_5XX_MESSAGES = {
    "broker_unavailable": "the job queue is unreachable right now",
    "store_unavailable": "the job store is unreachable right now",
}


# The error body's schema, once: routes name it in their responses, and the OpenAPI document
# (classifier_common.openapi) makes it the shared `Error` component.
ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "description": "The one error body of every 4xx and 5xx answer of every service.",
    "type": "object",
    "required": ["error", "request_id"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "Stable, for programs: e.g. `unknown_model`."},
                "message": {"type": "string", "description": "For people; may change."},
                "details": {"description": "More about the error, by code: e.g. `max_bytes`, `accepted`."},
            },
        },
        "request_id": {
            "type": ["string", "null"],
            "description": "Also in the X-Request-ID header; quote it in reports.",
        },
    },
}
ERROR_RESPONSE_SCHEMA: dict[str, Any] = {
    "description": "Error",
    "content": {"application/json": {"schema": ERROR_SCHEMA}},
}


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(code, message, details, request_id_var.get()), status_code=status, headers=headers)


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
        code = status_code_name(exc.status_code)
        message = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            headers = {**(headers or {}), "Allow": ", ".join(_allowed_methods(request))}
        return error_response(exc.status_code, code, message, None, headers)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return error_response(500, "internal_error", "internal server error")
