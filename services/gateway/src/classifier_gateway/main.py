"""Builds the gateway app. With CLASSIFIER_BROKER_URL=memory:// it is the whole embedded system:
it also serves the results routes and runs the worker in threads."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from classifier_common import metrics
from classifier_common.broker import Publisher, connect_listener, connect_publisher
from classifier_common.callbacks import start_notifier
from classifier_common.catalog import available_models, register_synthetic_model
from classifier_common.config import Settings
from classifier_common.errors import ClassifierError
from classifier_common.http import create_app as create_http_app
from classifier_common.http import health_router
from classifier_common.images import Gallery
from classifier_common.store import JobStore, open_store
from classifier_gateway.api.routes import images, info, jobs, models
from classifier_gateway.embedded import EmbeddedWorker

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"


def _check(probe) -> str | None:  # type: ignore[no-untyped-def]
    try:
        probe()
        return None
    except ClassifierError as exc:
        return exc.message


def _readiness(
    settings: Settings, store: JobStore, publisher: Publisher, gallery: Gallery, embedded: EmbeddedWorker | None
):
    def checks() -> dict[str, str | None]:
        out = {
            "store": _check(store.ping),
            "broker": _check(publisher.ping),
            "models": None if available_models(settings.models_dir) else f"no model weights in {settings.models_dir}",
            "gallery": None if gallery.list() else f"no images in {settings.gallery_dir}",
        }
        if embedded is not None:
            out["worker"] = embedded.readiness()
        return out

    return checks


def _refresh_job_gauges(store: JobStore) -> None:
    try:
        counts = store.count_by_status()
    except ClassifierError:
        return  # the scrape still answers; the gauges keep their last values
    for status, count in counts.items():
        metrics.JOBS_BY_STATUS.labels(status).set(count)
    metrics.BACKLOG.set(counts.get("queued", 0) + counts.get("running", 0))


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    if settings.synthetic_service_ms:  # scaling experiments only
        register_synthetic_model()
    store = open_store(settings.store_url, retention_s=settings.retention_s)
    publisher = connect_publisher(settings)
    gallery = Gallery(settings.gallery_dir)
    embedded = EmbeddedWorker(settings, store) if settings.embedded else None
    waiter = None
    if embedded is not None:
        from classifier_results.waiter import JobWaiter

        waiter = JobWaiter(store, connect_listener(settings))

    stop = threading.Event()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if embedded is not None and waiter is not None:
            from classifier_results.main import run_purger

            waiter.start()
            embedded.start()
            run_purger(store, settings, stop)
            start_notifier(store, settings, stop)
        yield
        stop.set()
        if embedded is not None:
            embedded.stop()
        if waiter is not None:
            waiter.close()
        publisher.close()
        store.close()

    app = create_http_app(
        "gateway",
        title="Image classifier",
        description="Submit an image with a model; the job is queued and classified by a worker. "
        "Poll the job's status URL for the top-5 predictions.",
        lifespan=lifespan,
        cors_origins=settings.cors_origins,
    )
    app.state.settings = settings
    app.state.store = store
    app.state.publisher = publisher
    app.state.gallery = gallery
    app.state.embedded = embedded
    app.state.job_waiter = waiter  # the results routes' long-poll (embedded only)
    for module in (models, images, info, jobs):
        app.include_router(module.router)
    if embedded is not None:
        from classifier_results.api.jobs import router as results_router

        app.include_router(results_router)
    app.include_router(
        health_router(_readiness(settings, store, publisher, gallery, embedded), lambda: _refresh_job_gauges(store))
    )

    if (STATIC_DIR / "index.html").is_file():
        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

        @app.get("/", include_in_schema=False)
        def index() -> Response:
            return FileResponse(STATIC_DIR / "index.html")
    else:

        @app.get("/", include_in_schema=False)
        def index() -> Response:
            return RedirectResponse("/docs")

    return app
