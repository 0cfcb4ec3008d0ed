"""The whole system as one app: the gateway, the results service and the worker composed over one
store. With the default settings the queue is in-process (``memory://``, spooled to disk) and the
store is SQLite in ./data. The services are the same components their own processes run; the
worker runs once per worker pool (CLASSIFIER_POOLS), each consuming its pool's queue."""

from __future__ import annotations

from fastapi import FastAPI

from classifier_common.config import Settings
from classifier_common.lifecycle import StoreComponent, compose_app
from classifier_common.store import JobStore, open_store
from classifier_gateway.main import DESCRIPTION, TITLE, Gateway
from classifier_results.main import Results
from classifier_worker.component import WorkerComponent


def _workers(settings: Settings, store: JobStore) -> list[WorkerComponent]:
    if not settings.pools_given:
        return [WorkerComponent(settings, store, None)]  # the one implicit pool: as before pools
    return [WorkerComponent(settings, store, pool) for pool in settings.pools]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    store = open_store(settings.store_url, retention_s=settings.retention_s)
    # Started in this order and stopped in reverse: the results service listens for finished
    # jobs before the worker announces any, and the worker drains before the store closes.
    components = [
        StoreComponent(store),
        Gateway(settings, store),
        Results(settings, store),
        *_workers(settings, store),
    ]
    return compose_app("gateway", components, title=TITLE, description=DESCRIPTION, cors_origins=settings.cors_origins)
