"""The results service: reads jobs from the store (with long-polls that answer when a worker
announces a finished job), cancels and retries them, purges finished jobs past retention, and
sends callbacks.

:class:`Results` is the service as a :class:`~classifier_common.lifecycle.Component`;
:func:`create_app` is the results service's own process (the service and the store)."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from fastapi import FastAPI

from classifier_common.broker import connect_listener, connect_publisher
from classifier_common.config import Settings
from classifier_common.domain import utcnow
from classifier_common.errors import StoreUnavailable
from classifier_common.lifecycle import Component, StoreComponent, compose_app
from classifier_common.queue_stats import QueueStats
from classifier_common.store import JobStore, open_store
from classifier_common.waiter import JobWaiter
from classifier_results.api.batches import router as batches_router
from classifier_results.api.jobs import router as jobs_router
from classifier_results.api.retry import router as retry_router
from classifier_results.notifier import start_notifier

log = logging.getLogger(__name__)


def run_purger(store: JobStore, settings: Settings, stop: threading.Event) -> threading.Thread:
    """Delete finished jobs older than the retention, and their stored uploads, every
    purge_interval_s (MongoDB's TTL index deletes the jobs on its own, but not their uploads in
    GridFS: this deletes those; SQLite needs both)."""

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


class Results(Component):
    name = "results"

    def __init__(self, settings: Settings, store: JobStore):
        self.settings = settings
        self.store = store
        # Long-polls answer when the workers announce a finished job (classifier_common.waiter).
        self.waiter = JobWaiter(store, connect_listener(settings))
        self.queue_stats = QueueStats(settings, store)
        # Retries are queued from here: the front door sends every /v1/jobs/{id}/... path to this service.
        self.publisher = connect_publisher(settings)
        self._stop = threading.Event()

    def install(self, app: FastAPI) -> None:
        app.state.settings = self.settings
        app.state.job_waiter = self.waiter
        app.state.queue_stats = self.queue_stats
        app.state.retry_publisher = self.publisher
        app.include_router(jobs_router)
        app.include_router(batches_router)
        app.include_router(retry_router)

    def start(self) -> None:
        run_purger(self.store, self.settings, self._stop)
        # Callbacks are sent from here, never from a worker: see classifier_results.notifier.
        start_notifier(self.store, self.settings, self._stop)
        # The waiter's listener connects with the first long-poll: a results service nobody
        # long-polls (clients that submit and wait at the gateway) takes no notices.

    def stop(self) -> None:
        self._stop.set()
        self.waiter.close()
        self.publisher.close()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    store = open_store(settings.store_url, retention_s=settings.retention_s)
    return compose_app(
        "results",
        [StoreComponent(store), Results(settings, store)],
        title="Classifier results",
        description="Returns classification jobs and batches by id; cancels and retries jobs.",
        docs_url="/results/docs",
        openapi_url="/results/openapi.json",
        cors_origins=settings.cors_origins,
    )
