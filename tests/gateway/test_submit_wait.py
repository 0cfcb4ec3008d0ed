"""Submit-and-wait: POST /v1/jobs?wait=N answers 200 with the finished job when it finishes within
N seconds, else the 202 it answers without ``wait``. Through the one-process system (real SQLite,
real EfficientNet-Lite0) and through the gateway alone, whose jobs no worker takes."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from classifier_common.broker.memory import MemoryBroker, broker_for, forget_broker
from classifier_common.domain import utcnow
from classifier_common.store import JobQuery
from classifier_common.store.sqlite import SqliteJobStore
from classifier_gateway.main import create_app as create_gateway
from tests.utils.api import assert_error_shape
from tests.utils.corrupt_images import bad_exif_images
from tests.utils.jobs import GOLDFINCH_RESULT
from tests.utils.settings import embedded_settings

GOLDFINCH = "n01531178_goldfinch.JPEG"
MODEL = "efficientnet_lite0"
# Longer than any wait below: an answer before it came from a notice, not the poller's fallback.
NO_FALLBACK_S = 60.0


def test_a_gallery_job_is_answered_finished_in_one_request(client: TestClient) -> None:
    response = client.post("/v1/jobs", params={"wait": 30}, json={"model": MODEL, "image": GOLDFINCH})
    assert response.status_code == 200, response.text
    job = response.json()
    assert job["status"] == "succeeded", job
    assert job["result"]["predictions"][0]["label"] == "goldfinch"
    assert response.headers["location"] == job["status_url"] == f"/v1/jobs/{job['id']}"
    assert client.get(response.headers["location"]).json() == job


def test_an_upload_is_answered_finished(client: TestClient, seeded: tuple[Path, Path]) -> None:
    data = (seeded[1] / GOLDFINCH).read_bytes()
    response = client.post(
        "/v1/jobs", params={"wait": 30}, files={"file": ("bird.jpg", data, "image/jpeg")}, data={"model": MODEL}
    )
    assert response.status_code == 200, response.text
    assert response.json()["source"] == "upload"
    assert response.json()["result"]["predictions"][0]["label"] == "goldfinch"


def test_a_failed_job_is_answered_finished_with_its_error(client: TestClient) -> None:
    """Accepted (the gateway reads only the headers), failed by the worker's decode: finished too."""
    broken = bad_exif_images()["jpeg-rational-as-text"]
    response = client.post(
        "/v1/jobs", params={"wait": 30}, files={"file": ("broken.jpg", broken, "image/jpeg")}, data={"model": MODEL}
    )
    assert response.status_code == 200, response.text
    job = response.json()
    assert job["status"] == "failed" and job["error"]["code"] == "invalid_image", job
    assert job["result"] is None


def test_without_wait_the_answer_is_202_as_ever(client: TestClient) -> None:
    response = client.post("/v1/jobs", json={"model": MODEL, "image": GOLDFINCH})
    assert response.status_code == 202 and response.json()["status"] == "queued"


def test_a_replayed_finished_job_is_answered_at_once(client: TestClient) -> None:
    key = {"Idempotency-Key": uuid.uuid4().hex}
    first = client.post("/v1/jobs", params={"wait": 30}, json={"model": MODEL, "image": GOLDFINCH}, headers=key)
    assert first.status_code == 200, first.text
    started = time.monotonic()
    again = client.post("/v1/jobs", params={"wait": 30}, json={"model": MODEL, "image": GOLDFINCH}, headers=key)
    assert time.monotonic() - started < 5
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    # Without wait a replay answers 202, as it always has, with the job as it stands.
    plain = client.post("/v1/jobs", json={"model": MODEL, "image": GOLDFINCH}, headers=key)
    assert plain.status_code == 202 and plain.json()["status"] == "succeeded"


@pytest.mark.parametrize("wait", ["-1", "30.5", "soon"])
def test_a_wait_out_of_range_is_422(client: TestClient, wait: str) -> None:
    response = client.post("/v1/jobs", params={"wait": wait}, json={"model": MODEL, "image": GOLDFINCH})
    assert_error_shape(response, 422, "invalid_request")


@pytest.fixture
def gateway(tmp_path: Path, seeded: tuple[Path, Path]) -> Iterator[tuple[TestClient, SqliteJobStore, MemoryBroker]]:
    """The gateway alone on an in-process broker: no worker takes its jobs."""
    settings = embedded_settings(tmp_path, seeded, spool_dir=None)
    app = create_gateway(settings)
    app.state.submit_parts.waiter.fallback_s = NO_FALLBACK_S
    with TestClient(app) as test_client:
        yield test_client, app.state.store, broker_for(settings)
    forget_broker(settings.broker_url)


def test_a_job_that_does_not_finish_in_time_is_answered_202_when_the_wait_runs_out(
    gateway: tuple[TestClient, SqliteJobStore, MemoryBroker],
) -> None:
    client, store, _ = gateway
    started = time.monotonic()
    response = client.post("/v1/jobs", params={"wait": 0.5}, json={"model": MODEL, "image": GOLDFINCH})
    assert time.monotonic() - started >= 0.5
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["status"] == "queued" and response.headers["location"] == job["status_url"]
    assert store.get(job["id"]).status.value == "queued"  # still queued for a worker: nothing lost


def test_the_answer_comes_with_the_workers_notice(gateway: tuple[TestClient, SqliteJobStore, MemoryBroker]) -> None:
    """The job finished (as a worker finishes one: written, then announced) while the request
    waits: answered at the notice, long before the poller's fallback look."""
    client, store, broker = gateway
    answer: dict = {}

    def submit() -> None:
        started = time.monotonic()
        response = client.post("/v1/jobs", params={"wait": 20}, json={"model": MODEL, "image": GOLDFINCH})
        answer.update(status=response.status_code, body=response.json(), waited=time.monotonic() - started)

    thread = threading.Thread(target=submit)
    thread.start()
    deadline = time.monotonic() + 10
    while not (queued := [job.id for job in store.list_jobs(JobQuery(limit=1))]) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert queued, "the job was not recorded"
    time.sleep(0.2)  # the request is waiting now
    store.start(queued[0], utcnow())
    store.finish(queued[0], GOLDFINCH_RESULT, utcnow())
    broker.announce_finished([queued[0]])
    thread.join(30)
    assert answer["status"] == 200, answer
    assert answer["body"]["status"] == "succeeded" and answer["body"]["id"] == queued[0]
    assert answer["waited"] < 5, f"answered after {answer['waited']:.2f} s of a 20 s wait: the notice was not heard"


def test_a_new_jobs_wait_asks_the_store_nothing_before_its_notice(
    gateway: tuple[TestClient, SqliteJobStore, MemoryBroker], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The request waits from before the job's message is published, so the job cannot have
    finished before it waited: no query for which waited-for jobs finished, only the read of the
    job its notice names."""
    client, store, broker = gateway
    listener = client.app.state.submit_parts.waiter.listener  # type: ignore[attr-defined]
    assert client.post("/v1/jobs", params={"wait": 0.1}, json={"model": MODEL, "image": GOLDFINCH}).status_code == 202
    deadline = time.monotonic() + 10
    while not listener.connected and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)  # the poller's look at every waited-for job, once the listener connected
    asked: list[list[str]] = []
    finished_among = store.finished_among

    def counted(job_ids: list[str]) -> set[str]:
        asked.append(job_ids)
        return finished_among(job_ids)

    monkeypatch.setattr(store, "finished_among", counted)
    answer: dict = {}

    def submit() -> None:
        response = client.post("/v1/jobs", params={"wait": 20}, json={"model": MODEL, "image": GOLDFINCH})
        answer.update(status=response.status_code, body=response.json())

    thread = threading.Thread(target=submit)
    thread.start()
    while len(store.list_jobs(JobQuery(limit=2))) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    job_id = store.list_jobs(JobQuery(limit=1))[0].id
    time.sleep(0.2)  # the request is waiting now
    store.start(job_id, utcnow())
    store.finish(job_id, GOLDFINCH_RESULT, utcnow())
    broker.announce_finished([job_id])
    thread.join(30)
    assert answer["status"] == 200 and answer["body"]["id"] == job_id, answer
    assert asked == [], f"asked which of {asked} finished"


def test_a_gateway_listens_for_notices_only_once_someone_waits(
    gateway: tuple[TestClient, SqliteJobStore, MemoryBroker],
) -> None:
    client, _, _ = gateway
    listener = client.app.state.submit_parts.waiter.listener  # type: ignore[attr-defined]
    assert client.post("/v1/jobs", json={"model": MODEL, "image": GOLDFINCH}).status_code == 202
    assert not listener.connected
    assert client.post("/v1/jobs", params={"wait": 0.1}, json={"model": MODEL, "image": GOLDFINCH}).status_code == 202
    assert listener.connected
