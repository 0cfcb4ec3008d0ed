"""The claim check: an upload above CLASSIFIER_CLAIM_CHECK_BYTES is stored once in the job store
and its queue message carries a reference; below it the bytes travel in the message. The gateway
alone on the in-process queue (no worker takes the messages, so they can be read), then the whole
system classifying a stored upload."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from classifier_common.broker.memory import MemoryBroker, broker_for, forget_broker
from classifier_common.config import Settings
from classifier_common.messages import decode
from classifier_common.store import JobStore, open_store
from classifier_gateway.main import create_app
from classifier_standalone.app import create_app as create_system
from tests.utils.api import assert_error_shape, wait_for_job
from tests.utils.settings import embedded_settings

GOLDFINCH = "n01531178_goldfinch.JPEG"


@pytest.fixture
def photo(seeded: tuple[Path, Path]) -> bytes:
    return (seeded[1] / GOLDFINCH).read_bytes()


@pytest.fixture
def settings(tmp_path: Path, seeded: tuple[Path, Path], photo: bytes) -> Iterator[Settings]:
    settings = embedded_settings(tmp_path, seeded, spool_dir=None, claim_check_bytes=len(photo) - 1, queue_max_length=2)
    yield settings
    forget_broker(settings.broker_url)


@pytest.fixture
def gateway(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture
def store(settings: Settings) -> Iterator[JobStore]:
    store = open_store(settings.store_url)
    yield store
    store.close()


def _upload(client: TestClient, data: bytes, **headers: str):
    return client.post(
        "/v1/jobs",
        files={"file": ("bird.jpg", data, "image/jpeg")},
        data={"model": "efficientnet_lite0"},
        headers=headers,
    )


def _queued(settings: Settings) -> list[bytes]:
    broker: MemoryBroker = broker_for(settings)
    return [message.body for message in broker._ready]


def test_an_upload_above_the_threshold_is_stored_and_referenced(
    gateway: TestClient, settings: Settings, store: JobStore, photo: bytes
) -> None:
    response = _upload(gateway, photo)
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    (body,) = _queued(settings)
    assert len(body) < 1024 and photo not in body
    header = json.loads(body)
    assert (header["v"], header["upload_ref"], header["job_id"]) == (3, job_id, job_id)
    assert store.get_upload(job_id) == photo


def test_an_upload_at_the_threshold_travels_in_the_message(settings: Settings, store: JobStore, photo: bytes) -> None:
    at_threshold = settings.model_copy(update={"claim_check_bytes": len(photo)})
    with TestClient(create_app(at_threshold)) as gateway:
        response = _upload(gateway, photo)
    assert response.status_code == 202, response.text
    (body,) = _queued(settings)
    message = decode(body)
    assert message.upload_bytes() == photo and message.upload_ref is None
    assert json.loads(body.partition(b"\n")[0])["v"] == 2
    assert store.get_upload(response.json()["id"]) is None


def test_a_refused_job_leaves_no_stored_upload(
    gateway: TestClient, settings: Settings, store: JobStore, photo: bytes
) -> None:
    accepted = [_upload(gateway, photo) for _ in range(settings.queue_max_length)]
    assert all(r.status_code == 202 for r in accepted)
    refused = _upload(gateway, photo)
    assert_error_shape(refused, 429, "queue_full")
    counts = store.count_by_status()
    assert sum(counts.values()) == settings.queue_max_length  # the refused job was rolled back
    with store._conn() as conn:  # type: ignore[attr-defined]
        stored = {row[0] for row in conn.execute("SELECT job_id FROM uploads")}
    assert stored == {r.json()["id"] for r in accepted}


def test_a_replayed_upload_is_stored_once_and_published_again(
    gateway: TestClient, settings: Settings, store: JobStore, photo: bytes
) -> None:
    key = {"Idempotency-Key": f"claim-{uuid.uuid4().hex}"}
    first, again = _upload(gateway, photo, **key), _upload(gateway, photo, **key)
    assert again.headers["idempotent-replayed"] == "true"
    assert first.json()["id"] == again.json()["id"]
    assert [decode(body).upload_ref for body in _queued(settings)] == [first.json()["id"]] * 2
    assert store.get_upload(first.json()["id"]) == photo


def test_the_system_classifies_a_stored_upload(tmp_path: Path, seeded: tuple[Path, Path], photo: bytes) -> None:
    settings = embedded_settings(tmp_path, seeded, claim_check_bytes=0, runtime="torch")
    with TestClient(create_system(settings)) as client:
        response = _upload(client, photo)
        assert response.status_code == 202, response.text
        job = wait_for_job(client, response.headers["location"])
    assert job["status"] == "succeeded", job
    assert job["result"]["predictions"][0]["label"] == "goldfinch"
    store = open_store(settings.store_url)
    assert store.get_upload(job["id"]) == photo  # kept until the job's retention ends
    store.close()
