"""Callbacks (classifier_common.callbacks), end to end through the embedded system (real SQLite,
in-process queue, real EfficientNet-Lite0) to a real HTTP receiver on 127.0.0.1: the body is the
finished job and its signature checks out; failed attempts are retried with growing delays and
given up after the bound; a slow receiver never holds up the worker; two notifiers on one store
never deliver the same callback twice. The store's callback state is in the store contract
(tests/common/store/test_callback_state.py).
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from classifier_common import callbacks
from classifier_common.config import Settings
from classifier_common.domain import Job, utcnow
from classifier_common.store import JobStore, open_store
from classifier_results.notifier import Notifier
from classifier_standalone.app import create_app
from tests.reliability.receiver import Receiver
from tests.utils.api import assert_error_shape, wait_for_job
from tests.utils.jobs import GOLDFINCH_RESULT, queued_job

GOLDFINCH = "n01531178_goldfinch.JPEG"
MODEL = "efficientnet_lite0"
SECRET = "test-only-callback-secret"
BACKOFF_S = 0.2
MAX_ATTEMPTS = 3


def _settings(state: Path, seeded: tuple[Path, Path], **overrides: object) -> Settings:
    values: dict[str, object] = {
        "broker_url": f"memory://callbacks-{uuid.uuid4().hex}",
        "store_url": f"sqlite:///{state}/jobs.db",
        "spool_dir": None,
        "models_dir": seeded[0],
        "gallery_dir": seeded[1],
        "models": [MODEL],
        "log_format": "text",
        "callback_secret": SECRET,
        "callback_allow_private": True,  # the receiver is on 127.0.0.1
        "callback_backoff_s": BACKOFF_S,
        "callback_backoff_max_s": 1.0,
        "callback_max_attempts": MAX_ATTEMPTS,
        "callback_poll_s": 0.05,
        "callback_timeout_s": 10.0,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, seeded: tuple[Path, Path]) -> Iterator[TestClient]:
    settings = _settings(tmp_path_factory.mktemp("callbacks"), seeded)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _submit(client: TestClient, callback_url: str) -> str:
    response = client.post("/v1/jobs", json={"model": MODEL, "image": GOLDFINCH, "callback_url": callback_url})
    assert response.status_code == 202, response.text
    assert "callback_url" not in response.json()  # private: never shown back
    return response.json()["id"]


# --- delivery -----------------------------------------------------------------------------------


def test_callback_is_signed_and_carries_the_finished_job(client: TestClient) -> None:
    with Receiver() as receiver:
        job_id = _submit(client, receiver.url)
        (received,) = receiver.wait_for(1)
        job = client.get(f"/v1/jobs/{job_id}").json()
        assert received.path == "/hook"
        assert received.headers["content-type"] == "application/json"
        assert callbacks.verify(received.body, SECRET, received.headers["x-classifier-signature"])
        assert not callbacks.verify(received.body, "another secret", received.headers["x-classifier-signature"])
        assert json.loads(received.body) == job  # exactly what GET /v1/jobs/{id} says
        assert job["status"] == "succeeded" and job["result"]["predictions"][0]["label"] == "goldfinch"
        assert received.headers["x-classifier-job-id"] == job_id
        assert received.headers["x-classifier-attempt"] == "1"
        threading.Event().wait(3 * BACKOFF_S)
        assert len(receiver.requests) == 1  # delivered: never sent again


def test_upload_with_a_callback_form_field(client: TestClient, seeded: tuple[Path, Path]) -> None:
    with Receiver() as receiver:
        response = client.post(
            "/v1/jobs",
            files={"file": ("bird.jpg", (seeded[1] / GOLDFINCH).read_bytes(), "image/jpeg")},
            data={"model": MODEL, "callback_url": receiver.url},
        )
        assert response.status_code == 202, response.text
        (received,) = receiver.wait_for(1)
        assert json.loads(received.body)["id"] == response.json()["id"]
        assert callbacks.verify(received.body, SECRET, received.headers["x-classifier-signature"])


def test_retried_after_the_receiver_answers_500_twice(client: TestClient) -> None:
    with Receiver(statuses=[500, 500]) as receiver:
        job_id = _submit(client, receiver.url)
        first, second, third = receiver.wait_for(3)
        assert [r.headers["x-classifier-attempt"] for r in (first, second, third)] == ["1", "2", "3"]
        assert first.body == second.body == third.body and json.loads(third.body)["id"] == job_id
        assert all(callbacks.verify(r.body, SECRET, r.headers["x-classifier-signature"]) for r in (first, third))
        # Doubling delays: at least BACKOFF_S, then 2 x BACKOFF_S.
        assert second.at - first.at >= BACKOFF_S * 0.9
        assert third.at - second.at >= 2 * BACKOFF_S * 0.9
        threading.Event().wait(4 * BACKOFF_S)
        assert len(receiver.requests) == 3


def test_given_up_after_the_bound(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="classifier_common.callbacks")
    with Receiver(default=503) as receiver:
        job_id = _submit(client, receiver.url)
        receiver.wait_for(MAX_ATTEMPTS)
        threading.Event().wait(8 * BACKOFF_S)  # longer than the next delay would be
        assert len(receiver.requests) == MAX_ATTEMPTS
    given_up = [r for r in caplog.records if r.getMessage().startswith("callback given up")]
    assert [r.job_id for r in given_up] == [job_id]
    assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "succeeded"  # the job itself is fine


def test_an_unreachable_receiver_counts_as_a_failed_attempt(client: TestClient) -> None:
    with Receiver() as closed:
        url = closed.url
    # Nothing listens there any more: refused at once, retried, given up; the job is unaffected.
    job_id = _submit(client, url)
    assert wait_for_job(client, f"/v1/jobs/{job_id}")["status"] == "succeeded"


def test_a_slow_receiver_never_holds_up_the_worker(client: TestClient) -> None:
    release = threading.Event()
    with Receiver(hold=release) as receiver:
        ids = [_submit(client, receiver.url) for _ in range(3)]
        receiver.wait_for(1)  # the first callback is being held by the receiver...
        # ...and every job still finishes: the worker never waits for a callback.
        assert [wait_for_job(client, f"/v1/jobs/{i}")["status"] for i in ids] == ["succeeded"] * 3
        assert len(receiver.requests) == 1
        release.set()
        received = receiver.wait_for(3)
        assert sorted(r.headers["x-classifier-job-id"] for r in received) == sorted(ids)


# --- what may be submitted ----------------------------------------------------------------------

BAD_URLS = [
    "ftp://example.com/hook",
    "file:///etc/passwd",
    "javascript:alert(1)",
    "http://",
    "http://user:password@example.com/hook",
    "http://example.com/" + "x" * callbacks.MAX_URL_LENGTH,
    "http://exa mple.com/hook",
    "http://example.com:99999/hook",
    "not a url",
    "",
]
PRIVATE_URLS = [
    "http://127.0.0.1:8080/hook",
    "http://localhost/hook",
    "http://169.254.169.254/latest/meta-data",  # the cloud metadata service
    "http://10.0.0.7/hook",
    "http://[::1]/hook",
]


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory, seeded: tuple[Path, Path]) -> TestClient:
    """Private targets refused, as in production. Not started (no lifespan): nothing is sent."""
    return TestClient(create_app(_settings(tmp_path_factory.mktemp("strict"), seeded, callback_allow_private=False)))


@pytest.mark.parametrize("url", BAD_URLS + PRIVATE_URLS + [123, ["http://example.com"]])
def test_invalid_callback_urls_are_422(strict: TestClient, url: object) -> None:
    response = strict.post("/v1/jobs", json={"model": MODEL, "image": GOLDFINCH, "callback_url": url})
    assert_error_shape(response, 422, "invalid_input")


def test_a_public_callback_url_is_accepted(strict: TestClient) -> None:
    response = strict.post(
        "/v1/jobs", json={"model": MODEL, "image": GOLDFINCH, "callback_url": "https://hooks.example.com/classified"}
    )
    assert response.status_code == 202, response.text


def test_without_a_secret_callback_url_is_refused(tmp_path: Path, seeded: tuple[Path, Path]) -> None:
    app = create_app(_settings(tmp_path, seeded, callback_secret=None))
    response = TestClient(app).post(
        "/v1/jobs", json={"model": MODEL, "image": GOLDFINCH, "callback_url": "https://hooks.example.com/x"}
    )
    body = assert_error_shape(response, 422, "invalid_input")
    assert "secret" in body["error"]["message"]


# --- several notifiers -------------------------------------------------------------------------


def _finished_job(store: JobStore, callback_url: str | None, finished_ago_s: float = 0) -> Job:
    now = utcnow()
    job = queued_job(now, callback_url=callback_url)
    store.create(job)
    store.start(job.id, now)
    assert store.finish(job.id, GOLDFINCH_RESULT, now - timedelta(seconds=finished_ago_s))
    return job


def test_two_notifiers_never_deliver_the_same_callback_twice(tmp_path: Path, seeded: tuple[Path, Path]) -> None:
    """Two results replicas on one store, racing over the same due callbacks."""
    settings = _settings(tmp_path, seeded)
    with Receiver() as receiver:
        store = open_store(settings.store_url)
        ids = {_finished_job(store, receiver.url).id for _ in range(40)}
        notifiers = [Notifier(open_store(settings.store_url), settings) for _ in range(2)]
        start = threading.Barrier(2)

        def drain(notifier: Notifier) -> None:
            start.wait()
            while notifier.run_once():
                pass

        threads = [threading.Thread(target=drain, args=(n,)) for n in notifiers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        received = receiver.wait_for(len(ids))
        assert sorted(r.headers["x-classifier-job-id"] for r in received) == sorted(ids)
        assert store.callbacks_due(utcnow() + timedelta(days=1)) == []
