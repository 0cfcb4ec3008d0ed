"""One lifecycle for every part of a process, and the composer that runs them (kserve's
model-server shape).

A :class:`Component` is a service (its routes on the app, its background loops), the worker, or
a resource such as the job store. Each has the same small shape: ``install`` its routes,
``start``, ``stop``, ``readiness``. :func:`compose_app` builds one FastAPI app from a list of
them: it starts them in order, reports readiness as the conjunction of theirs, and stops them in
reverse order. A service's own process composes its component with the store; the one-process
system (``classifier_standalone``) composes all of them. No service knows how it is composed.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from classifier_common import openapi
from classifier_common.errors import ClassifierError
from classifier_common.store import JobStore
from classifier_common.web import create_app, health_router

log = logging.getLogger(__name__)

Checks = dict[str, str | None]  # {dependency: None if fine, else the reason it is not}


class Component:
    """The shape every part of a process has. The defaults do nothing, so a part overrides only
    what it has."""

    name = "component"

    def install(self, app: FastAPI) -> None:
        """Add this part's routes and ``app.state`` entries (called once, before start)."""

    def start(self) -> None:
        """Start background work. Must return promptly: slow loading runs in a thread and shows
        in :meth:`readiness` until done."""

    def stop(self) -> None:
        """Stop background work and release what ``start`` took."""

    def readiness(self) -> Checks:
        return {}

    def before_scrape(self) -> None:
        """Refresh gauges read from elsewhere, just before /metrics answers."""


class StoreComponent(Component):
    """The job store as a part: reported in readiness, closed last."""

    name = "store"

    def __init__(self, store: JobStore):
        self.store = store

    def install(self, app: FastAPI) -> None:
        app.state.store = self.store

    def readiness(self) -> Checks:
        try:
            self.store.ping()
            return {"store": None}
        except ClassifierError as exc:
            return {"store": exc.message}

    def stop(self) -> None:
        self.store.close()


class Composer:
    """Starts components in order, stops the started ones in reverse, readiness is the conjunction."""

    def __init__(self, components: Sequence[Component]):
        self.components = list(components)
        self._started: list[Component] = []

    def start(self) -> None:
        try:
            for component in self.components:
                component.start()
                self._started.append(component)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        while self._started:
            component = self._started.pop()
            try:
                component.stop()
            except Exception:  # one part failing to stop must not keep the others running
                log.exception("stopping %s failed", component.name)

    def readiness(self) -> Checks:
        checks: Checks = {}
        for component in self.components:
            for name, reason in component.readiness().items():
                # Two parts checking one dependency (the store): not ready if either says so.
                checks[name] = checks.get(name) or reason
        return checks

    def before_scrape(self) -> None:
        for component in self.components:
            component.before_scrape()


def compose_app(
    service: str,
    components: Sequence[Component],
    *,
    title: str,
    description: str,
    cors_origins: list[str] | None = None,
    **kwargs: Any,
) -> FastAPI:
    """One FastAPI app serving ``components``: each installs its routes, the app's lifespan
    starts and stops them, /readyz and /metrics cover them all."""
    composer = Composer(components)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        composer.start()
        try:
            yield
        finally:
            composer.stop()

    app = create_app(service, title, description, lifespan=lifespan, cors_origins=cors_origins, **kwargs)
    app.state.composer = composer
    for component in components:
        component.install(app)
    app.include_router(health_router(composer.readiness, composer.before_scrape))
    openapi.document(app)
    return app
