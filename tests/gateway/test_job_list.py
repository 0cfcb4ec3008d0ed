"""GET /v1/jobs: newest first, filters, cursor pages stable under inserts, bounded pages, and
with API keys on, each key sees its own jobs only. Against both stores."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from classifier_common.domain import JobError, utcnow
from classifier_common.store import JobStore
from tests.utils.api import assert_error_shape
from tests.utils.jobs_api import ALICE, BOB, KEYS, STORES, jobs_api

GOLDFINCH = "n01531178_goldfinch.JPEG"
BODY = {"model": "efficientnet_lite0", "image": GOLDFINCH}


@pytest.fixture(params=STORES)
def api(
    request: pytest.FixtureRequest, tmp_path: Path, seeded: tuple[Path, Path]
) -> Iterator[tuple[TestClient, JobStore]]:
    with jobs_api(request.param, tmp_path, seeded) as running:
        yield running


@pytest.fixture(params=STORES)
def keyed(
    request: pytest.FixtureRequest, tmp_path: Path, seeded: tuple[Path, Path]
) -> Iterator[tuple[TestClient, JobStore]]:
    with jobs_api(request.param, tmp_path, seeded, api_keys=KEYS) as running:
        yield running


def _submit(client: TestClient, headers: dict[str, str] | None = None, **body: str) -> str:
    response = client.post("/v1/jobs", json={**BODY, **body}, headers=headers or {})
    assert response.status_code == 202, response.text
    return response.json()["id"]


def test_newest_first_with_job_documents(api: tuple[TestClient, JobStore]) -> None:
    client, _ = api
    ids = [_submit(client) for _ in range(3)]
    response = client.get("/v1/jobs")
    assert response.status_code == 200
    body = response.json()
    assert [job["id"] for job in body["jobs"]] == ids[::-1]
    assert body["next"] is None and "link" not in response.headers
    first = body["jobs"][0]
    assert first["status"] == "queued" and first["status_url"] == f"/v1/jobs/{ids[-1]}"
    assert first["retry_of"] is None and first["retried_by"] is None
    assert "client_id" not in first and "idempotency_key" not in first


def test_filters(api: tuple[TestClient, JobStore]) -> None:
    client, store = api
    lite0 = _submit(client)
    lite1 = _submit(client, model="efficientnet_lite1")
    failed = _submit(client)
    store.fail(failed, JobError(code="x", message="y"), utcnow())
    assert client.delete(f"/v1/jobs/{lite0}").status_code == 200

    def listed(**params: object) -> list[str]:
        response = client.get("/v1/jobs", params=params)
        assert response.status_code == 200, response.text
        return [job["id"] for job in response.json()["jobs"]]

    assert listed(model="efficientnet_lite1") == [lite1]
    assert listed(status="failed") == [failed]
    assert listed(status="failed,canceled") == [failed, lite0]
    assert listed(status=["canceled", "failed"]) == [failed, lite0]
    assert listed(status="queued", model="efficientnet_lite0") == []
    created = store.get(lite1).created_at  # type: ignore[union-attr]
    assert listed(created_before=created.isoformat()) == [lite0]
    assert lite1 not in listed(created_after=created.isoformat())
    naive = (created - timedelta(milliseconds=1)).replace(tzinfo=None).isoformat()  # taken as UTC
    assert lite1 in listed(created_after=naive)


def test_pages_follow_next_and_stay_stable_under_inserts(api: tuple[TestClient, JobStore]) -> None:
    client, _ = api
    ids = [_submit(client) for _ in range(7)]
    seen: list[str] = []
    url: str | None = "/v1/jobs?limit=3&model=efficientnet_lite0"
    pages = 0
    while url is not None:
        response = client.get(url)
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["jobs"]) <= 3
        seen += [job["id"] for job in body["jobs"]]
        if body["next"]:
            assert response.headers["link"] == f'<{body["next"]}>; rel="next"'
            assert "model=efficientnet_lite0" in body["next"] and "limit=3" in body["next"]
        _submit(client)  # a job arriving between pages is never in a later one
        url = body["next"]
        pages += 1
    assert seen == ids[::-1] and pages == 3


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"limit": 201}, "invalid_request"),
        ({"limit": 0}, "invalid_request"),
        ({"limit": "many"}, "invalid_request"),
        ({"status": "done"}, "invalid_input"),
        ({"created_after": "yesterday"}, "invalid_request"),
        ({"created_before": "0.5"}, "invalid_request"),  # no seconds since 1970: ISO 8601 only
        ({"created_after": "1733400000"}, "invalid_request"),
        ({"cursor": "not-a-cursor"}, "invalid_input"),
        ({"cursor": "WyJ4Il0"}, "invalid_input"),  # base64 of ["x"]
    ],
)
def test_bad_queries_are_422(api: tuple[TestClient, JobStore], params: dict[str, object], code: str) -> None:
    client, _ = api
    assert_error_shape(client.get("/v1/jobs", params=params), 422, code)


def test_limit_defaults_to_50_and_allows_200(api: tuple[TestClient, JobStore]) -> None:
    client, store = api
    from tests.utils.jobs import queued_job

    for i in range(201):
        store.create(queued_job(created_at=utcnow() - timedelta(seconds=i)))
    assert len(client.get("/v1/jobs").json()["jobs"]) == 50
    page = client.get("/v1/jobs", params={"limit": 200}).json()
    assert len(page["jobs"]) == 200 and page["next"] is not None


def test_with_keys_each_key_lists_its_own_jobs(keyed: tuple[TestClient, JobStore]) -> None:
    client, _ = keyed
    alice = [_submit(client, ALICE) for _ in range(2)]
    bob = _submit(client, BOB)
    assert [job["id"] for job in client.get("/v1/jobs", headers=ALICE).json()["jobs"]] == alice[::-1]
    assert [job["id"] for job in client.get("/v1/jobs", headers=BOB).json()["jobs"]] == [bob]
    assert_error_shape(client.get("/v1/jobs"), 401, "unauthorized")
    assert_error_shape(client.get("/v1/jobs", headers={"X-API-Key": "nope"}), 401, "unauthorized")
