"""A queued job's document says where it stands: GET /v1/jobs/{id} gains ``queue`` with the jobs
ahead of it for the same pool and an estimate of its wait from the pool's recent throughput. Run
against both stores, through the gateway (submission) and the results service (reads)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from classifier_common.domain import utcnow
from classifier_common.store import JobStore
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


def _client(seeded: tuple[Path, Path], store: JobStore, **overrides: object) -> TestClient:
    return TestClient(system_without_workers(settings_for(seeded, **overrides), store))


def _submit(client: TestClient, n: int, model: str = "efficientnet_lite0") -> list[str]:
    ids = []
    for _ in range(n):
        response = client.post("/v1/jobs", json={"model": model, "image": GOLDFINCH})
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    return ids


def test_each_queued_job_counts_the_jobs_ahead(seeded, store: JobStore) -> None:
    with _client(seeded, store) as client:
        ids = _submit(client, 4)
        positions = [client.get(f"/v1/jobs/{job_id}").json()["queue"] for job_id in ids]
        assert [p["ahead"] for p in positions] == [0, 1, 2, 3]
        # No worker has been seen and none has finished anything: no estimate.
        assert {p["estimated_wait_s"] for p in positions} == {None}

        # The first job is taken by a worker, the second canceled: the last has one job ahead.
        store.start(ids[0], utcnow())
        assert client.delete(f"/v1/jobs/{ids[1]}").status_code == 200
        assert client.get(f"/v1/jobs/{ids[3]}").json()["queue"]["ahead"] == 1
        # A job that is not queued has no place in the queue.
        assert "queue" not in client.get(f"/v1/jobs/{ids[0]}").json()
        assert "queue" not in client.get(f"/v1/jobs/{ids[1]}").json()


def test_the_wait_is_estimated_from_the_recent_throughput(seeded, store: JobStore) -> None:
    worked(store, 100, over_s=50.0)  # 100 jobs run over 45 s lately: 2.2 jobs/s while busy
    worker_alive(store, ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"])
    with _client(seeded, store) as client:
        ids = _submit(client, 4)
        last = client.get(f"/v1/jobs/{ids[3]}", params={"wait": 0.2}).json()
    assert last["status"] == "queued"
    # 3 jobs ahead and this one, at 100 / 45 jobs/s: 1.8 s.
    assert last["queue"] == {"ahead": 3, "estimated_wait_s": 1.8}


def test_idle_minutes_do_not_slow_the_estimate(seeded, store: JobStore) -> None:
    """The same work done 3 minutes ago, the workers idle since: a backlog still drains at the
    pool's busy rate."""
    worked(store, 100, over_s=50.0, ago_s=180.0)
    worker_alive(store, ["efficientnet_lite0"])
    with _client(seeded, store) as client:
        ids = _submit(client, 4)
        assert client.get(f"/v1/jobs/{ids[3]}").json()["queue"] == {"ahead": 3, "estimated_wait_s": 1.8}


def test_no_estimate_without_a_ready_worker(seeded, store: JobStore) -> None:
    """Throughput from workers that are gone says nothing about when this job will run."""
    worked(store, 20, over_s=10.0)
    with _client(seeded, store) as client:
        (job_id,) = _submit(client, 1)
        assert client.get(f"/v1/jobs/{job_id}").json()["queue"] == {"ahead": 0, "estimated_wait_s": None}


def test_jobs_of_models_no_pool_serves_alongside_are_not_ahead(seeded, store: JobStore) -> None:
    """The count is per pool: with this server's one pool serving lite0 and lite1 only, a queued
    lite2 job recorded by another server does not stand in this pool's queue."""
    from tests.utils.jobs import queued_job

    store.create(queued_job(model="efficientnet_lite2"))
    with _client(seeded, store, models=["efficientnet_lite0", "efficientnet_lite1"]) as client:
        (first,) = _submit(client, 1, model="efficientnet_lite1")
        (second,) = _submit(client, 1, model="efficientnet_lite0")
        assert client.get(f"/v1/jobs/{first}").json()["queue"]["ahead"] == 0
        assert client.get(f"/v1/jobs/{second}").json()["queue"]["ahead"] == 1
