"""POST /v1/jobs/{id}/retry: a new job from a failed or canceled one, linked both ways; once per
job; 409 for a job that is not finished badly or whose upload was not kept; Idempotency-Key
honoured. Against both stores."""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from classifier_common.domain import JobError, JobResult, utcnow
from classifier_common.store import JobStore
from classifier_common.store.mongo import MongoJobStore
from tests.utils.api import assert_error_shape
from tests.utils.jobs import queued_job
from tests.utils.jobs_api import STORES, Api, jobs_api

BODY = {"model": "efficientnet_lite1", "image": "n01531178_goldfinch.JPEG"}


@pytest.fixture(params=STORES)
def api(
    request: pytest.FixtureRequest, tmp_path: Path, seeded: tuple[Path, Path]
) -> Iterator[tuple[TestClient, JobStore]]:
    with jobs_api(request.param, tmp_path, seeded) as running:
        yield running


def _failed(client: TestClient, store: JobStore) -> str:
    response = client.post("/v1/jobs", json=BODY)
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    store.start(job_id, utcnow())
    store.fail(job_id, JobError(code="inference_failed", message="out of memory"), utcnow())
    return job_id


def test_a_failed_job_is_retried_as_a_new_linked_job(api: tuple[TestClient, JobStore]) -> None:
    client, store = api
    old_id = _failed(client, store)
    response = client.post(f"/v1/jobs/{old_id}/retry")
    assert response.status_code == 202, response.text
    new = response.json()
    assert response.headers["location"] == new["status_url"] == f"/v1/jobs/{new['id']}"
    assert new["id"] != old_id and new["status"] == "queued" and new["retry_of"] == old_id
    assert (new["model"], new["image"], new["source"]) == (BODY["model"], BODY["image"], "gallery")
    old = client.get(f"/v1/jobs/{old_id}").json()
    assert old["retried_by"] == new["id"] and old["status"] == "failed"
    listed = client.get("/v1/jobs").json()["jobs"]
    assert [job["id"] for job in listed[:2]] == [new["id"], old_id]
    # The new job is queued for real: canceling it works, and a canceled job can be retried in turn.
    assert client.delete(new["status_url"]).json()["status"] == "canceled"
    again = client.post(f"/v1/jobs/{new['id']}/retry")
    assert again.status_code == 202 and again.json()["retry_of"] == new["id"]


def test_a_job_is_retried_once(api: tuple[TestClient, JobStore]) -> None:
    client, store = api
    old_id = _failed(client, store)
    first = client.post(f"/v1/jobs/{old_id}/retry").json()
    body = assert_error_shape(client.post(f"/v1/jobs/{old_id}/retry"), 409, "already_retried")
    assert body["error"]["details"]["retried_by"] == first["id"]


def test_racing_retries_make_one_job(api: tuple[TestClient, JobStore]) -> None:
    client, store = api
    if isinstance(store, MongoJobStore):
        pytest.skip("mongomock has no locking: a race against it tests mongomock (the store contract races SQLite)")
    old_id = _failed(client, store)
    statuses: list[int] = []
    start = threading.Barrier(4)

    def retry() -> None:
        start.wait()
        statuses.append(client.post(f"/v1/jobs/{old_id}/retry").status_code)

    threads = [threading.Thread(target=retry) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [202, 409, 409, 409]
    assert len(client.get("/v1/jobs", params={"status": "queued"}).json()["jobs"]) == 1


def test_idempotency_key_answers_the_same_retry(api: tuple[TestClient, JobStore]) -> None:
    client, store = api
    old_id = _failed(client, store)
    headers = {"Idempotency-Key": "retry-once"}
    first = client.post(f"/v1/jobs/{old_id}/retry", headers=headers)
    second = client.post(f"/v1/jobs/{old_id}/retry", headers=headers)
    assert first.status_code == second.status_code == 202
    assert second.json()["id"] == first.json()["id"] and second.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    # The key of a submission is not a retry's: reused for another request, 422 as for POST /v1/jobs.
    other_id = _failed(client, store)
    assert client.post("/v1/jobs", json=BODY, headers={"Idempotency-Key": "submitted"}).status_code == 202
    reused = client.post(f"/v1/jobs/{other_id}/retry", headers={"Idempotency-Key": "submitted"})
    assert_error_shape(reused, 422, "idempotency_key_reused")
    assert store.get(other_id).retried_by is None  # type: ignore[union-attr]


@pytest.mark.parametrize("status", ["queued", "running", "succeeded"])
def test_only_failed_or_canceled_jobs_are_retried(api: tuple[TestClient, JobStore], status: str) -> None:
    client, store = api
    job_id = client.post("/v1/jobs", json=BODY).json()["id"]
    if status != "queued":
        store.start(job_id, utcnow())
    if status == "succeeded":
        store.finish(job_id, JobResult(predictions=[], model_version="1"), utcnow())
    body = assert_error_shape(client.post(f"/v1/jobs/{job_id}/retry"), 409, "not_retryable")
    assert body["error"]["details"] == {"status": status}


def test_an_upload_job_is_not_retried_its_bytes_are_not_kept(api: tuple[TestClient, JobStore]) -> None:
    client, _ = api
    image = io.BytesIO()
    Image.new("RGB", (32, 32), "red").save(image, "PNG")
    files = {"file": ("red.png", image.getvalue(), "image/png")}
    job_id = client.post("/v1/jobs", data={"model": "efficientnet_lite0"}, files=files).json()["id"]
    assert client.delete(f"/v1/jobs/{job_id}").status_code == 200
    body = assert_error_shape(client.post(f"/v1/jobs/{job_id}/retry"), 409, "upload_not_kept")
    assert "submit the file again" in body["error"]["message"]


def test_an_upload_job_whose_image_the_claim_check_kept_is_retried_from_it(api: tuple[TestClient, JobStore]) -> None:
    client, store = api
    image = io.BytesIO()
    Image.frombytes("RGB", (400, 400), os.urandom(400 * 400 * 3)).save(image, "PNG")
    data = image.getvalue()
    assert len(data) > 256 * 1024  # above the default claim-check threshold: stored, kept
    files = {"file": ("noise.png", data, "image/png")}
    job_id = client.post("/v1/jobs", data={"model": "efficientnet_lite0"}, files=files).json()["id"]
    assert client.delete(f"/v1/jobs/{job_id}").status_code == 200
    response = client.post(f"/v1/jobs/{job_id}/retry")
    assert response.status_code == 202, response.text
    new = response.json()
    assert (new["source"], new["image"], new["retry_of"]) == ("upload", "noise.png", job_id)
    assert store.get_upload(new["id"]) == data  # the new job's message refers to its own copy


def test_unknown_or_malformed_ids(api: tuple[TestClient, JobStore]) -> None:
    client, _ = api
    assert_error_shape(client.post(f"/v1/jobs/{'0' * 32}/retry"), 404, "not_found")
    assert_error_shape(client.post("/v1/jobs/not-an-id/retry"), 422, "invalid_input")
    assert_error_shape(client.get("/v1/jobs/x/retry"), 405)


def test_a_job_of_a_model_no_pool_serves_any_more_is_not_retried(api: Api) -> None:
    client, store = api
    old = store.create(queued_job(model="efficientnet_lite2"))  # submitted before the pools changed
    store.cancel(old.id, utcnow())
    body = assert_error_shape(client.post(f"/v1/jobs/{old.id}/retry"), 422, "model_not_served")
    # The same refusal as a new job of that model gets at the gateway.
    assert body["error"]["details"] == {
        "model": "efficientnet_lite2",
        "served_models": ["efficientnet_lite0", "efficientnet_lite1"],
    }
    assert store.get(old.id).retried_by is None  # type: ignore[union-attr]


def test_an_idempotency_key_over_200_characters_is_refused_everywhere(api: tuple[TestClient, JobStore]) -> None:
    client, store = api
    old_id = _failed(client, store)
    too_long = {"idempotency-key": "k" * 201}
    for response in (
        client.post("/v1/jobs", json=BODY, headers=too_long),
        client.post("/v1/batches", json={"model": BODY["model"], "images": [BODY["image"]]}, headers=too_long),
        client.post(f"/v1/jobs/{old_id}/retry", headers=too_long),
    ):
        body = assert_error_shape(response, 422, "invalid_input")
        assert "longer than 200" in body["error"]["message"]
    assert client.post("/v1/jobs", json=BODY, headers={"idempotency-key": "k" * 200}).status_code == 202
