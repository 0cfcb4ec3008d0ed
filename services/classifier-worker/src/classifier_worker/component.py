"""The worker as a :class:`~classifier_common.lifecycle.Component`: consumer threads inside a
process that also serves HTTP (the one-process system, one component per worker pool).
``python -m classifier_worker`` is the worker's own process."""

from __future__ import annotations

import logging
import threading

from classifier_common.broker import connect_consumer
from classifier_common.config import Settings
from classifier_common.lifecycle import Checks, Component
from classifier_common.store import JobStore
from classifier_worker.worker import Worker, load_models

log = logging.getLogger(__name__)


class WorkerComponent(Component):
    name = "worker"

    def __init__(self, settings: Settings, store: JobStore, pool: str | None = None):
        """Serves ``pool`` (default: ``settings.pool``); named ``worker-<pool>`` when given one."""
        if pool is not None:
            settings = settings.model_copy(update={"pool": pool})
            self.name = f"worker-{pool}"
        self.settings = settings
        self.store = store
        self.worker: Worker | None = None  # once the models are loaded
        self.error: str | None = None
        self._thread = threading.Thread(target=self._start, name=f"{self.name}-start", daemon=True)

    def start(self) -> None:
        """Load the models in the background so the API answers (and queues) at once."""
        self._thread.start()

    def _start(self) -> None:
        try:
            models = load_models(self.settings)
            worker = Worker(
                self.settings, connect_consumer(self.settings), self.store, models, threads=self.settings.worker_threads
            )
            worker.start()
            self.worker = worker
        except Exception as exc:
            self.error = f"the worker failed to start: {exc}"
            log.exception(self.error)

    def readiness(self) -> Checks:
        if self.error:
            return {self.name: self.error}
        if self.worker is None:
            return {self.name: "loading models"}
        failing = [f"{k}: {v}" for k, v in self.worker.readiness().items() if v]
        return {self.name: "; ".join(failing) or None}

    def stop(self) -> None:
        # A process must not exit while torch is still loading in the starter thread: the C++
        # runtime aborts ("terminate called without an active exception").
        if self._thread.is_alive():
            self._thread.join()
        if self.worker is not None:
            self.worker.stop()
