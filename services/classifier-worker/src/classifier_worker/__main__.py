"""``python -m classifier_worker``: one worker process (the production topology)."""

from __future__ import annotations

import logging
import signal
import sys
import threading

from classifier_common import logs as clog
from classifier_common.broker import connect_consumer
from classifier_common.command import parse_command_line
from classifier_common.config import Settings
from classifier_common.store import open_store
from classifier_worker import health
from classifier_worker.runtimes import RuntimeUnavailable
from classifier_worker.worker import Worker, load_models

log = logging.getLogger("classifier_worker")

DEFAULT_PORT = 9100


def main() -> int:
    parse_command_line(
        "python -m classifier_worker",
        "One classifier worker: consumes its pool's RabbitMQ queue; health and metrics on the port.",
        DEFAULT_PORT,
    )
    settings = Settings()
    clog.configure("classifier-worker", settings.log_level, settings.log_format)
    if settings.embedded:
        log.error(
            "CLASSIFIER_BROKER_URL is memory://: the one-process system is python -m classifier_standalone (make run)"
        )
        return 2
    try:
        settings.pool_models(settings.pool)
    except ValueError as exc:
        log.error("%s: set CLASSIFIER_POOL to one of them", exc)
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    worker: Worker | None = None
    server = health.serve(
        settings.host,
        settings.port or DEFAULT_PORT,
        lambda: worker.readiness() if worker else {"models": "loading models"},
        head_timeout_s=settings.http_head_timeout_s,
        max_head_bytes=settings.http_max_head_bytes,
    )
    try:
        models = load_models(settings)
    except RuntimeUnavailable as exc:
        log.error("the worker cannot start: %s", exc)
        server.shutdown()
        return 2
    store = open_store(settings.store_url, retention_s=settings.retention_s)
    worker = Worker(settings, connect_consumer(settings), store, models, threads=settings.worker_threads)
    worker.start()
    while not stop.wait(0.5):
        if worker.fatal.is_set():
            break
    drained = worker.stop()
    store.close()
    server.shutdown()
    return 0 if drained and not worker.fatal.is_set() else 1


if __name__ == "__main__":
    sys.exit(main())
