"""The job API (gateway + results service) over a store the test chooses, with no worker: jobs
stay queued until the test moves them. Parametrized over both store adapters."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mongomock
from fastapi.testclient import TestClient

from classifier_common.broker.memory import forget_broker
from classifier_common.config import Settings
from classifier_common.lifecycle import StoreComponent, compose_app
from classifier_common.store import JobStore
from classifier_common.store.mongo import MongoJobStore
from classifier_common.store.sqlite import SqliteJobStore
from classifier_gateway.main import Gateway
from classifier_results.main import Results

STORES = ["sqlite", "mongo-mongomock"]
KEYS = ["alice-key", "bob-key"]
ALICE = {"X-API-Key": KEYS[0]}
BOB = {"X-API-Key": KEYS[1]}

Api = tuple[TestClient, JobStore]


def make_store(kind: str, tmp_path: Path) -> JobStore:
    if kind == "sqlite":
        return SqliteJobStore(tmp_path / "jobs.db")
    return MongoJobStore("mongodb://mongomock/classifier_test", client=mongomock.MongoClient())


@contextmanager
def jobs_api(
    kind: str, tmp_path: Path, seeded: tuple[Path, Path], **overrides: object
) -> Iterator[tuple[TestClient, JobStore]]:
    values: dict[str, object] = {
        "broker_url": f"memory://jobs-api-{uuid.uuid4().hex}",
        "spool_dir": None,
        "models_dir": seeded[0],
        "gallery_dir": seeded[1],
        "models": ["efficientnet_lite0", "efficientnet_lite1"],  # no worker runs: nothing is loaded
        "log_format": "text",
    }
    values.update(overrides)
    settings = Settings(**values)
    store = make_store(kind, tmp_path)
    app = compose_app(
        "gateway",
        [StoreComponent(store), Gateway(settings, store), Results(settings, store)],
        title="jobs",
        description="the job API without a worker",
    )
    try:
        with TestClient(app) as client:
            yield client, store
    finally:
        forget_broker(settings.broker_url)
