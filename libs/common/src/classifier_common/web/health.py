"""/healthz, /readyz and /metrics, the same on every service."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from classifier_common.web.errors import error_response


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
