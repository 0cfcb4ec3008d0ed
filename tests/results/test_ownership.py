"""With API keys on, a job is its submitter's: reading, cancelling and retrying another key's job
answers 404, as for a job that does not exist; a key has a bound on its queued jobs (429 with
Retry-After). With keys off, every job is everyone's, as before. Against both stores."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from classifier_common.domain import JobError, utcnow
from classifier_common.store import JobStore
from tests.utils.api import assert_error_shape
from tests.utils.jobs_api import ALICE, BOB, KEYS, STORES, jobs_api

BODY = {"model": "efficientnet_lite0", "image": "n01531178_goldfinch.JPEG"}


@pytest.fixture(params=STORES)
def keyed(
    request: pytest.FixtureRequest, tmp_path: Path, seeded: tuple[Path, Path]
) -> Iterator[tuple[TestClient, JobStore]]:
    with jobs_api(request.param, tmp_path, seeded, api_keys=KEYS, max_queued_per_client=3) as running:
        yield running


@pytest.fixture(params=STORES)
def open_api(
    request: pytest.FixtureRequest, tmp_path: Path, seeded: tuple[Path, Path]
) -> Iterator[tuple[TestClient, JobStore]]:
    with jobs_api(request.param, tmp_path, seeded, max_queued_per_client=1) as running:
        yield running


def _submit(client: TestClient, headers: dict[str, str]) -> str:
    response = client.post("/v1/jobs", json=BODY, headers=headers)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def test_another_keys_job_is_not_found(keyed: tuple[TestClient, JobStore]) -> None:
    client, store = keyed
    job_id = _submit(client, ALICE)
    assert client.get(f"/v1/jobs/{job_id}", headers=ALICE).status_code == 200
    assert_error_shape(client.get(f"/v1/jobs/{job_id}", headers=BOB), 404, "not_found")
    assert_error_shape(client.get(f"/v1/jobs/{job_id}?wait=1", headers=BOB), 404, "not_found")
    assert_error_shape(client.delete(f"/v1/jobs/{job_id}", headers=BOB), 404, "not_found")
    assert store.get(job_id).status.value == "queued"  # type: ignore[union-attr]
    assert_error_shape(client.get(f"/v1/jobs/{job_id}"), 401, "unauthorized")

    assert client.delete(f"/v1/jobs/{job_id}", headers=ALICE).json()["status"] == "canceled"
    assert_error_shape(client.post(f"/v1/jobs/{job_id}/retry", headers=BOB), 404, "not_found")
    retried = client.post(f"/v1/jobs/{job_id}/retry", headers=ALICE)
    assert retried.status_code == 202, retried.text
    assert_error_shape(client.get(retried.headers["location"], headers=BOB), 404, "not_found")


def test_the_job_records_a_digest_of_the_key_never_the_key(keyed: tuple[TestClient, JobStore]) -> None:
    client, store = keyed
    job = store.get(_submit(client, ALICE))
    assert job is not None and job.client_id and KEYS[0] not in job.client_id
    assert job.client_id != store.get(_submit(client, BOB)).client_id  # type: ignore[union-attr]


def test_a_key_has_a_bound_on_its_queued_jobs(keyed: tuple[TestClient, JobStore]) -> None:
    client, store = keyed
    alice = [_submit(client, ALICE) for _ in range(3)]
    refused = client.post("/v1/jobs", json=BODY, headers=ALICE)
    body = assert_error_shape(refused, 429, "too_many_queued")
    assert int(refused.headers["retry-after"]) > 0 and body["error"]["details"] == {"max_queued": 3}
    assert store.count_queued(store.get(alice[0]).client_id) == 3  # type: ignore[union-attr]  # the refused one never existed
    _submit(client, BOB)  # another key is not held back

    # An idempotent replay is not a new job: answered, not refused.
    replay = client.post("/v1/jobs", json=BODY, headers={**BOB, "Idempotency-Key": "k1"})
    assert replay.status_code == 202
    again = client.post("/v1/jobs", json=BODY, headers={**BOB, "Idempotency-Key": "k1"})
    assert again.status_code == 202 and again.headers["idempotent-replayed"] == "true"

    # Once one has started (or been canceled), there is room again.
    store.start(alice[0], utcnow())
    _submit(client, ALICE)
    assert_error_shape(client.post("/v1/jobs", json=BODY, headers=ALICE), 429, "too_many_queued")
    # A retry counts like any job.
    store.fail(alice[0], JobError(code="x", message="y"), utcnow())
    assert_error_shape(client.post(f"/v1/jobs/{alice[0]}/retry", headers=ALICE), 429, "too_many_queued")
    assert store.get(alice[0]).retried_by is None  # type: ignore[union-attr]  # the refused retry let go of it


def test_with_keys_off_every_job_is_everyones_and_unbounded(open_api: tuple[TestClient, JobStore]) -> None:
    client, _ = open_api
    ids = [_submit(client, {}) for _ in range(3)]  # more than max_queued_per_client: it is per key
    assert client.get(f"/v1/jobs/{ids[0]}").status_code == 200
    assert client.get(f"/v1/jobs/{ids[0]}", headers={"X-API-Key": "anything"}).status_code == 200
    assert client.delete(f"/v1/jobs/{ids[0]}").status_code == 200


def test_another_keys_batch_is_not_found(keyed: tuple[TestClient, JobStore]) -> None:
    client, _ = keyed
    body = {"model": "efficientnet_lite0", "images": ["n01531178_goldfinch.JPEG"]}
    response = client.post("/v1/batches", json=body, headers=ALICE)
    assert response.status_code == 202, response.text
    url = response.headers["location"]
    assert client.get(url, headers=ALICE).status_code == 200
    assert_error_shape(client.get(url, headers=BOB), 404, "not_found")
    assert_error_shape(client.get(f"{url}?format=csv", headers=BOB), 404, "not_found")
    assert_error_shape(client.get(url), 401, "unauthorized")
