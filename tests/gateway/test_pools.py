"""Worker pools at the gateway: each job goes to its pool's queue, a model no pool serves is
refused (422 model_not_served) before anything is stored, a full pool's queue refuses only its
own models (429), and GET /v1/models says which pool serves each model and whether it is ready.
The gateway alone (no workers: nothing drains the queues) on the in-process broker, over both
stores."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import mongomock
import pytest
from fastapi.testclient import TestClient

from classifier_common.broker import memory
from classifier_common.config import Settings
from classifier_common.domain import utcnow
from classifier_common.lifecycle import StoreComponent, compose_app
from classifier_common.messages import decode
from classifier_common.store import JobStore
from classifier_common.store.mongo import MongoJobStore
from classifier_common.store.sqlite import SqliteJobStore
from classifier_gateway.main import Gateway
from tests.utils.api import assert_error_shape

POOLS = "lite=efficientnet_lite0;big=efficientnet_lite2"  # efficientnet_lite1: weights present, no pool
IMAGE = "n01531178_goldfinch.JPEG"
MAX_LENGTH = 3


@pytest.fixture(params=["sqlite", "mongo-mongomock"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[JobStore]:
    opened: JobStore
    if request.param == "sqlite":
        opened = SqliteJobStore(tmp_path / "jobs.db")
    else:
        opened = MongoJobStore("mongodb://mongomock/classifier_test", client=mongomock.MongoClient())
    yield opened
    opened.close()


@pytest.fixture
def settings(tmp_path: Path, seeded: tuple[Path, Path]) -> Iterator[Settings]:
    url = f"memory://pools-{uuid.uuid4().hex}"
    yield Settings(
        broker_url=url,
        models_dir=seeded[0],
        gallery_dir=seeded[1],
        pools=POOLS,
        queue_max_length=MAX_LENGTH,
        spool_dir=None,
        log_format="text",
    )
    memory.forget_broker(url)


@pytest.fixture
def client(settings: Settings, store: JobStore) -> Iterator[TestClient]:
    app = compose_app("gateway", [StoreComponent(store), Gateway(settings, store)], title="t", description="t")
    with TestClient(app) as test_client:
        yield test_client


def _submit(client: TestClient, model: str):  # type: ignore[no-untyped-def]
    return client.post("/v1/jobs", json={"model": model, "image": IMAGE})


def _queued_models(settings: Settings, pool: str) -> list[str]:
    broker = memory.broker_for(settings, pool)
    consumer = memory.MemoryConsumer(broker, prefetch=100)
    consumer.start()
    models = []
    while (delivery := consumer.get(timeout=0)) is not None:
        models.append(decode(delivery.body).model)
    consumer.close()  # back in the queue, as if nobody had looked
    return models


def test_each_job_goes_to_the_queue_of_its_models_pool(client: TestClient, settings: Settings) -> None:
    for model in ("efficientnet_lite0", "efficientnet_lite2", "efficientnet_lite0"):
        assert _submit(client, model).status_code == 202
    assert _queued_models(settings, "lite") == ["efficientnet_lite0", "efficientnet_lite0"]
    assert _queued_models(settings, "big") == ["efficientnet_lite2"]
    assert client.app.state.publisher.depth("lite") == 2  # type: ignore[attr-defined]


def test_a_model_no_pool_serves_is_refused_and_nothing_is_stored(client: TestClient, store: JobStore) -> None:
    response = _submit(client, "efficientnet_lite1")  # in the catalog, its weights here, in no pool
    body = assert_error_shape(response, 422, "model_not_served")
    assert body["error"]["details"] == {
        "model": "efficientnet_lite1",
        "served_models": ["efficientnet_lite0", "efficientnet_lite2"],
    }
    assert "efficientnet_lite1" in body["error"]["message"]
    assert sum(store.count_by_status().values()) == 0
    assert_error_shape(_submit(client, "no_such_model"), 422, "unknown_model")  # unchanged
    assert_error_shape(_submit(client, "resnet18"), 422, "unknown_model")  # no weights here: as before


def test_a_full_pool_refuses_only_its_own_models(client: TestClient, settings: Settings, store: JobStore) -> None:
    for _ in range(MAX_LENGTH):
        assert _submit(client, "efficientnet_lite0").status_code == 202
    refused = _submit(client, "efficientnet_lite0")
    body = assert_error_shape(refused, 429, "queue_full")
    assert body["error"]["details"] == {"pool": "lite", "max_length": MAX_LENGTH}
    assert int(refused.headers["retry-after"]) > 0
    assert _submit(client, "efficientnet_lite2").status_code == 202  # another pool's queue has room
    assert store.count_by_status()["queued"] == MAX_LENGTH + 1  # the refused job does not exist


def test_models_say_which_pool_serves_each_and_whether_it_is_ready(client: TestClient, store: JobStore) -> None:
    def listed() -> dict[str, dict]:
        return {m["name"]: m for m in client.get("/v1/models").json()}

    models = listed()
    assert {name: (m["pool"], m["pool_ready"]) for name, m in models.items() if m["pool"]} == {
        "efficientnet_lite0": ("lite", False),
        "efficientnet_lite2": ("big", False),
    }
    assert models["efficientnet_lite1"]["pool"] is None and not models["efficientnet_lite1"]["pool_ready"]

    store.heartbeat("big-worker-1", ["efficientnet_lite2"], utcnow())  # a worker of pool big is up
    models = listed()
    assert models["efficientnet_lite2"]["pool_ready"] and models["efficientnet_lite2"]["loaded"]
    assert not models["efficientnet_lite0"]["pool_ready"] and not models["efficientnet_lite0"]["loaded"]
