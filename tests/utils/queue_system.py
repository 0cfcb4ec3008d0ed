"""The gateway and the results service over a store of either kind, with no worker: jobs stay
queued, and the history a worker would leave (finished jobs, heartbeats) is written straight into
the store, so positions and statistics can be checked against known numbers."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import mongomock
import uvicorn
from fastapi import FastAPI

from classifier_common.config import Settings
from classifier_common.domain import JobError, utcnow
from classifier_common.lifecycle import StoreComponent, compose_app
from classifier_common.store import JobStore
from classifier_common.store.mongo import MongoJobStore
from classifier_common.store.sqlite import SqliteJobStore
from classifier_gateway.main import Gateway
from classifier_results.main import Results
from devstack.ports import free_port
from tests.utils.jobs import GOLDFINCH_RESULT, queued_job

BACKENDS = ["sqlite", "mongo-mongomock"]


def open_test_store(kind: str, tmp_path: Path) -> JobStore:
    if kind == "sqlite":
        return SqliteJobStore(tmp_path / "jobs.db")
    return MongoJobStore(f"mongodb://mongomock/queue_{uuid.uuid4().hex[:8]}", client=mongomock.MongoClient())


def settings_for(seeded: tuple[Path, Path], **overrides: object) -> Settings:
    models_dir, gallery_dir = seeded
    values: dict[str, object] = {
        "broker_url": f"memory://queue-{uuid.uuid4().hex}",
        "store_url": "sqlite:///unused.db",  # the store is passed in
        "models_dir": models_dir,
        "gallery_dir": gallery_dir,
        "spool_dir": None,
        "log_format": "text",
    }
    values.update(overrides)
    return Settings(**values)


def system_without_workers(settings: Settings, store: JobStore) -> FastAPI:
    """What `make stack` serves behind its front door, less the workers."""
    return compose_app(
        "gateway",
        [StoreComponent(store), Gateway(settings, store), Results(settings, store)],
        title="test",
        description="test",
    )


def worked(
    store: JobStore,
    jobs: int,
    *,
    over_s: float,
    model: str = "efficientnet_lite0",
    failed: int = 0,
    dead_lettered: int = 0,
    latency_s: float = 1.0,
    ago_s: float = 0.0,
) -> None:
    """``jobs`` jobs a worker finished one after another over the last ``over_s`` seconds, each
    ``latency_s`` after its submission, each running 90 % of its share of the time; the last
    ``failed`` of them failed, ``dead_lettered`` of those by the reconciler. ``ago_s``: the
    last one finished that long ago."""
    now = utcnow() - timedelta(seconds=ago_s)
    step = over_s / jobs
    for i in range(jobs):
        started = now - timedelta(seconds=over_s - i * step)
        finished = started + timedelta(seconds=step * 0.9)
        job = store.create(queued_job(created_at=finished - timedelta(seconds=latency_s), model=model))
        store.start(job.id, started)
        if i >= jobs - failed:
            code = "dead_lettered" if i >= jobs - dead_lettered else "internal_error"
            store.fail(job.id, JobError(code=code, message="it failed"), finished)
        else:
            store.finish(job.id, GOLDFINCH_RESULT, finished)


def worker_alive(store: JobStore, models: list[str], worker_id: str = "worker-1") -> None:
    store.heartbeat(worker_id, models, utcnow())


@contextmanager
def serving(app: FastAPI, **config: Any) -> Iterator[str]:
    """``app`` at a real URL (uvicorn on a thread of this process), for the CLI and the browser;
    ``config`` adds to uvicorn's (``http=`` the services' protocol)."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", **config)
    )
    thread = threading.Thread(target=server.run, name="test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the test server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
