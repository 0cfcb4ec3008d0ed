"""The results service: reads jobs from the store. Also purges finished jobs past retention."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI

from classifier_common.broker import connect_listener
from classifier_common.callbacks import start_notifier
from classifier_common.config import Settings
from classifier_common.domain import utcnow
from classifier_common.errors import StoreUnavailable
from classifier_common.http import create_app as create_http_app
from classifier_common.http import health_router
from classifier_common.store import JobStore, open_store
from classifier_results.api.jobs import router as jobs_router
from classifier_results.waiter import JobWaiter

log = logging.getLogger(__name__)


def store_check(store: JobStore) -> str | None:
    try:
        store.ping()
        return None
    except StoreUnavailable as exc:
        return exc.message


def run_purger(store: JobStore, settings: Settings, stop: threading.Event) -> threading.Thread:
    """Delete finished jobs older than the retention, every purge_interval_s (MongoDB's TTL
    index does the same on its own; SQLite needs this)."""

    def loop() -> None:
        while not stop.wait(settings.purge_interval_s):
            try:
                removed = store.purge_finished(utcnow() - timedelta(seconds=settings.retention_s))
                if removed:
                    log.info("purged %d finished jobs past retention", removed)
            except StoreUnavailable:
                log.warning("purge skipped: store unavailable")

    thread = threading.Thread(target=loop, name="purger", daemon=True)
    thread.start()
    return thread


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    store = open_store(settings.store_url, retention_s=settings.retention_s)
    # Long-polls answer when the workers announce a finished job (classifier_results.waiter).
    waiter = JobWaiter(store, connect_listener(settings))
    stop = threading.Event()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        run_purger(store, settings, stop)
        # Callbacks are sent from here, never from a worker: see classifier_common.callbacks.
        start_notifier(store, settings, stop)
        waiter.start()
        yield
        stop.set()
        waiter.close()
        store.close()

    app = create_http_app(
        "results",
        title="Classifier results",
        description="Returns classification jobs by id.",
        lifespan=lifespan,
        docs_url="/results/docs",
        openapi_url="/results/openapi.json",
        cors_origins=settings.cors_origins,
    )
    app.state.settings = settings
    app.state.store = store
    app.state.job_waiter = waiter
    app.include_router(jobs_router)
    app.include_router(health_router(lambda: {"store": store_check(store)}))
    return app
