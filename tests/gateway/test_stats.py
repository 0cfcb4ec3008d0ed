"""GET /v1/stats, the operator's view of each pool of workers, against both stores: the backlog
from the store and the broker, consumers, ready workers (heartbeats), throughput, latency and
dead-lettered jobs over the window, and the API key it needs when keys are on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from classifier_common.broker import connect_consumer
from classifier_common.domain import utcnow
from classifier_common.store import JobStore
from tests.utils.api import assert_error_shape
from tests.utils.jobs import GOLDFINCH
from tests.utils.queue_system import (
    BACKENDS,
    open_test_store,
    settings_for,
    system_without_workers,
    worked,
    worker_alive,
)


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[JobStore]:
    opened = open_test_store(request.param, tmp_path)
    yield opened
    opened.close()


def test_an_idle_system(seeded, store: JobStore) -> None:
    with TestClient(system_without_workers(settings_for(seeded), store)) as client:
        response = client.get("/v1/stats")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["window_s"] == 300 and body["broker_error"] is None
    (pool,) = body["pools"]
    assert pool == {
        "pool": "default",
        "queue": "classifier.jobs.default",
        "models": ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"],
        "backlog": 0,
        "queued": 0,
        "running": 0,
        "broker": {"ready": 0, "unacked": 0, "consumers": 0, "dead_letters": 0},
        "ready_workers": 0,
        "finished": 0,
        "failed": 0,
        "dead_lettered": 0,
        "jobs_per_s": 0.0,
        "busy_jobs_per_s": None,
        "p50_latency_s": None,
        "p95_latency_s": None,
    }


def test_a_busy_pool(seeded, store: JobStore) -> None:
    settings = settings_for(seeded)
    worked(store, 100, over_s=50.0, failed=3, dead_lettered=1, latency_s=2.5)  # 2 jobs/s
    worker_alive(store, ["efficientnet_lite0"], "worker-1")
    worker_alive(store, ["efficientnet_lite0"], "worker-2")
    with TestClient(system_without_workers(settings, store)) as client:
        ids = []
        for _ in range(5):
            response = client.post("/v1/jobs", json={"model": "efficientnet_lite0", "image": GOLDFINCH})
            assert response.status_code == 202, response.text
            ids.append(response.json()["id"])
        # A worker holds one message and has started its job.
        consumer = connect_consumer(settings)
        consumer.start()
        try:
            delivery = consumer.get(timeout=5)
            assert delivery is not None
            store.start(ids[0], utcnow())
            body = client.get("/v1/stats").json()
        finally:
            consumer.close()
    (pool,) = body["pools"]
    assert (pool["backlog"], pool["queued"], pool["running"]) == (5, 4, 1)
    assert pool["broker"] == {"ready": 4, "unacked": 1, "consumers": 1, "dead_letters": 0}
    assert pool["ready_workers"] == 2
    assert (pool["finished"], pool["failed"], pool["dead_lettered"]) == (100, 3, 1)
    assert pool["jobs_per_s"] == round(100 / 300, 3)
    # Busy 90 % of those 50 s (worked() leaves a gap after each job): 100 / 45 s.
    assert pool["busy_jobs_per_s"] == pytest.approx(100 / 45, rel=0.01)
    assert pool["p50_latency_s"] == pool["p95_latency_s"] == 2.5


def test_the_window_bounds_the_finished_jobs(seeded, store: JobStore) -> None:
    worked(store, 10, over_s=600.0)  # one job a minute for ten minutes
    with TestClient(system_without_workers(settings_for(seeded), store)) as client:
        assert client.get("/v1/stats").json()["pools"][0]["finished"] == 5
        assert client.get("/v1/stats", params={"window_s": 3600}).json()["pools"][0]["finished"] == 10
        assert_error_shape(client.get("/v1/stats", params={"window_s": 5}), 422, "invalid_request")
        assert_error_shape(client.get("/v1/stats", params={"window_s": "soon"}), 422, "invalid_request")


def test_a_key_is_needed_when_keys_are_on(seeded, store: JobStore) -> None:
    with TestClient(system_without_workers(settings_for(seeded, api_keys=["k-ops"]), store)) as client:
        assert_error_shape(client.get("/v1/stats"), 401, "unauthorized")
        assert_error_shape(client.get("/v1/stats", headers={"x-api-key": "wrong"}), 401, "unauthorized")
        assert client.get("/v1/stats", headers={"x-api-key": "k-ops"}).status_code == 200
        assert client.get("/v1/stats", headers={"authorization": "Bearer k-ops"}).status_code == 200


def test_without_the_broker_the_store_still_answers(seeded, store: JobStore) -> None:
    app = system_without_workers(settings_for(seeded), store)
    with TestClient(app) as client:
        app.state.publisher.close()  # what a publisher that lost RabbitMQ answers: BrokerUnavailable
        body = client.get("/v1/stats").json()
    assert body["broker_error"] and body["pools"][0]["broker"] is None
    assert body["pools"][0]["backlog"] == 0


def test_documented_in_openapi(seeded, store: JobStore) -> None:
    with TestClient(system_without_workers(settings_for(seeded), store)) as client:
        spec = client.get("/openapi.json").json()
        answer = client.get("/v1/stats").json()
    operation = spec["paths"]["/v1/stats"]["get"]
    assert operation["tags"] == ["stats"] and "stats" in {tag["name"] for tag in spec["tags"]}
    assert {"ApiKey": []} in operation["security"] and {} in operation["security"]
    assert {"401", "422", "503"} <= set(operation["responses"])
    (window,) = operation["parameters"]
    assert window["name"] == "window_s" and window["description"]
    example = operation["responses"]["200"]["content"]["application/json"]["example"]
    assert set(example) == set(answer) and set(example["pools"][0]) == set(answer["pools"][0])
    pool_schema = spec["components"]["schemas"]["PoolStats"]
    assert all(field.get("description") for field in pool_schema["properties"].values())
