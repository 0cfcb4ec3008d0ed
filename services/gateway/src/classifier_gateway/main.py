"""The gateway: accepts jobs and queues them; serves the catalog, the gallery and the web page.

:class:`Gateway` is the service as a :class:`~classifier_common.lifecycle.Component`;
:func:`create_app` is the gateway's own process (the gateway and the store). The one-process
system composes the same component with the others (``classifier_standalone``)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from classifier_common import metrics
from classifier_common.broker import connect_listener, connect_publisher
from classifier_common.catalog import available_models, register_synthetic_models
from classifier_common.config import Settings
from classifier_common.errors import ClassifierError
from classifier_common.images import Gallery
from classifier_common.lifecycle import Checks, Component, StoreComponent, compose_app
from classifier_common.queue_stats import QueueStats
from classifier_common.store import JobStore, open_store
from classifier_common.waiter import JobWaiter
from classifier_gateway.api.deps import SubmitParts
from classifier_gateway.api.routes import batches, images, info, jobs, models, stats

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
TITLE = "Image classifier"
DESCRIPTION = (
    "Submit an image with a model; the job is queued and classified by a worker. "
    "Poll the job's status URL for the top-5 predictions, or submit with `wait` to have the "
    "finished job in the answer."
)


def _check(probe: Callable[[], object]) -> str | None:
    try:
        probe()
        return None
    except ClassifierError as exc:
        return exc.message


class Gateway(Component):
    name = "gateway"

    def __init__(self, settings: Settings, store: JobStore):
        if settings.synthetic_service_ms:  # scaling experiments only
            register_synthetic_models(m for models in settings.pools.values() for m in models)
        self.settings = settings
        self.store = store
        self.publisher = connect_publisher(settings)
        self.gallery = Gallery(settings.gallery_dir)
        # Submit-and-wait (POST /v1/jobs?wait=N) answers when a worker announces the job finished;
        # the listener connects with the first such request, so a gateway nobody waits on never listens.
        self.waiter = JobWaiter(store, connect_listener(settings))

    def install(self, app: FastAPI) -> None:
        app.state.settings = self.settings
        app.state.publisher = self.publisher
        app.state.gallery = self.gallery
        app.state.submit_parts = SubmitParts(self.settings, self.store, self.publisher, self.gallery, self.waiter)
        app.state.queue_stats = QueueStats(self.settings, self.store)
        for module in (models, images, info, jobs, batches, stats):
            app.include_router(module.router)
        _install_page(app)

    def stop(self) -> None:
        self.waiter.close()
        self.publisher.close()

    def readiness(self) -> Checks:
        settings = self.settings
        return {
            "broker": _check(self.publisher.ping),
            "models": None if available_models(settings.models_dir) else f"no model weights in {settings.models_dir}",
            "gallery": None if self.gallery.list() else f"no images in {settings.gallery_dir}",
        }

    def before_scrape(self) -> None:
        try:
            counts = self.store.count_by_status()
        except ClassifierError:
            return  # the scrape still answers; the gauges keep their last values
        for status, count in counts.items():
            metrics.JOBS_BY_STATUS.labels(status).set(count)
        metrics.BACKLOG.set(counts.get("queued", 0) + counts.get("running", 0))


def _install_page(app: FastAPI) -> None:
    if (STATIC_DIR / "index.html").is_file():
        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

        @app.get("/", include_in_schema=False)
        def index() -> Response:
            return FileResponse(STATIC_DIR / "index.html")
    else:

        @app.get("/", include_in_schema=False)
        def index() -> Response:
            return RedirectResponse("/docs")


def create_app(settings: Settings | None = None) -> FastAPI:
    """The gateway's own process: it queues jobs for workers elsewhere (``make stack``, Kubernetes)."""
    settings = settings or Settings()
    store = open_store(settings.store_url, retention_s=settings.retention_s)
    return compose_app(
        "gateway",
        [StoreComponent(store), Gateway(settings, store)],
        title=TITLE,
        description=DESCRIPTION,
        cors_origins=settings.cors_origins,
    )
