"""The embedded default: the worker runs as threads inside the gateway process, fed by the
in-process queue. Started when CLASSIFIER_BROKER_URL is memory:// (what `make run` does)."""

from __future__ import annotations

import logging
import threading

from classifier_common.broker import connect_consumer
from classifier_common.config import Settings
from classifier_common.store import JobStore

log = logging.getLogger(__name__)


class EmbeddedWorker:
    def __init__(self, settings: Settings, store: JobStore):
        self.settings = settings
        self.store = store
        self.worker = None  # classifier_worker.worker.Worker once the models are loaded
        self.error: str | None = None
        self._thread = threading.Thread(target=self._start, name="embedded-worker-start", daemon=True)

    def start(self) -> None:
        """Load the models in the background so the API answers (and queues) at once."""
        self._thread.start()

    def _start(self) -> None:
        try:
            from classifier_worker.worker import Worker, load_models
        except ImportError as exc:  # the gateway image does not ship torch
            self.error = f"the embedded mode needs the classifier-worker package: {exc}"
            log.error(self.error)
            return
        try:
            models = load_models(self.settings)
            worker = Worker(
                self.settings, connect_consumer(self.settings), self.store, models, threads=self.settings.worker_threads
            )
            worker.start()
            self.worker = worker
        except Exception as exc:
            self.error = f"embedded worker failed to start: {exc}"
            log.exception(self.error)

    def loaded_models(self) -> set[str]:
        return set(self.worker.models) if self.worker else set()

    def readiness(self) -> str | None:
        if self.error:
            return self.error
        if self.worker is None:
            return "loading models"
        failing = [f"{k}: {v}" for k, v in self.worker.readiness().items() if v]
        return "; ".join(failing) or None

    def stop(self) -> None:
        # A process must not exit while torch is still loading in the starter thread: the C++
        # runtime aborts ("terminate called without an active exception").
        if self._thread.is_alive():
            self._thread.join()
        if self.worker is not None:
            self.worker.stop()
