"""POST /v1/jobs and the job lifecycle through the embedded system (real SQLite, in-process
queue, real EfficientNet-Lite0)."""

from __future__ import annotations

import io
import re
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.utils.api import assert_error_shape, wait_for_job

GOLDFINCH = "n01531178_goldfinch.JPEG"


def test_gallery_job_202_location_and_result(client: TestClient) -> None:
    response = client.post("/v1/jobs", json={"model": "efficientnet_lite0", "image": GOLDFINCH})
    assert response.status_code == 202, response.text
    ticket = response.json()
    assert re.fullmatch(r"[0-9a-f]{32}", ticket["id"])
    assert ticket["status"] == "queued" and ticket["model"] == "efficientnet_lite0"
    assert response.headers["location"] == f"/v1/jobs/{ticket['id']}" == ticket["status_url"]
    assert "idempotency_key" not in ticket

    job = wait_for_job(client, response.headers["location"])
    assert job["status"] == "succeeded", job
    predictions = job["result"]["predictions"]
    assert len(predictions) == 5 and predictions[0]["label"] == "goldfinch" and predictions[0]["class_index"] == 11
    assert [p["score"] for p in predictions] == sorted((p["score"] for p in predictions), reverse=True)
    assert job["attempts"] == 1 and job["error"] is None
    assert job["created_at"] <= job["started_at"] <= job["finished_at"]


def test_status_is_readable_right_after_202(client: TestClient) -> None:
    """The queued record is written before the 202: never a 404 on Location."""
    for _ in range(20):
        response = client.post("/v1/jobs", json={"model": "efficientnet_lite0", "image": "n07747607_orange.JPEG"})
        assert response.status_code == 202
        assert client.get(response.headers["location"]).status_code == 200


def test_upload_job(client: TestClient, seeded: tuple[Path, Path]) -> None:
    data = (seeded[1] / GOLDFINCH).read_bytes()
    response = client.post(
        "/v1/jobs", files={"file": ("bird.jpg", data, "image/jpeg")}, data={"model": "efficientnet_lite0"}
    )
    assert response.status_code == 202, response.text
    assert response.json()["source"] == "upload" and response.json()["image"] == "bird.jpg"
    job = wait_for_job(client, response.headers["location"])
    assert job["result"]["predictions"][0]["label"] == "goldfinch"


def test_png_upload_is_classified(client: TestClient, seeded: tuple[Path, Path]) -> None:
    out = io.BytesIO()
    Image.open(seeded[1] / GOLDFINCH).save(out, "PNG")
    response = client.post(
        "/v1/jobs", files={"file": ("bird.png", out.getvalue(), "image/png")}, data={"model": "efficientnet_lite0"}
    )
    assert response.status_code == 202, response.text
    assert wait_for_job(client, response.headers["location"])["result"]["predictions"][0]["label"] == "goldfinch"


def test_repeated_image_is_answered_from_the_result_cache(client: TestClient) -> None:
    body = {"model": "efficientnet_lite0", "image": "n02793495_barn.JPEG"}
    first = wait_for_job(client, client.post("/v1/jobs", json=body).headers["location"])
    second = wait_for_job(client, client.post("/v1/jobs", json=body).headers["location"])
    assert first["id"] != second["id"]
    assert second["result"]["cached"] is True
    assert second["result"]["predictions"] == first["result"]["predictions"]
    assert second["result"]["model_version"] == first["result"]["model_version"]


def test_idempotency_key_returns_the_same_job(client: TestClient) -> None:
    body = {"model": "efficientnet_lite0", "image": GOLDFINCH}
    headers = {"Idempotency-Key": "order-42"}
    first = client.post("/v1/jobs", json=body, headers=headers)
    again = client.post("/v1/jobs", json=body, headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"


def test_idempotency_key_reused_with_another_request_is_422(client: TestClient) -> None:
    headers = {"Idempotency-Key": f"order-{uuid.uuid4().hex}"}
    first = client.post("/v1/jobs", json={"model": "efficientnet_lite0", "image": GOLDFINCH}, headers=headers)
    assert first.status_code == 202
    other = {"model": "efficientnet_lite0", "image": "n07747607_orange.JPEG"}
    body = assert_error_shape(client.post("/v1/jobs", json=other, headers=headers), 422, "idempotency_key_reused")
    assert body["error"]["details"] == {"job_id": first.json()["id"]}


def test_idempotency_key_reused_with_another_upload_is_422(client: TestClient) -> None:
    headers = {"Idempotency-Key": f"upload-{uuid.uuid4().hex}"}
    photo = (client.app.state.settings.gallery_dir / GOLDFINCH).read_bytes()

    def upload(data: bytes):
        return client.post(
            "/v1/jobs", files={"file": ("a.jpg", data)}, data={"model": "efficientnet_lite0"}, headers=headers
        )

    first = upload(photo)
    assert first.status_code == 202, first.text
    assert upload(photo).json()["id"] == first.json()["id"]
    changed = photo[:-2] + b"\x00" + photo[-2:]  # one byte more before the end marker
    assert_error_shape(upload(changed), 422, "idempotency_key_reused")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"model": "nope", "image": GOLDFINCH}, "unknown_model"),
        ({"model": "resnet18", "image": GOLDFINCH}, "unknown_model"),  # in the catalog, weights absent
        ({"model": "efficientnet_lite0", "image": "missing.JPEG"}, "unknown_image"),
        ({"model": "efficientnet_lite0", "image": "../../etc/passwd"}, "unknown_image"),
        ({"model": "efficientnet_lite0"}, "invalid_input"),
        ({"model": "efficientnet_lite0", "image": GOLDFINCH, "extra": 1}, "invalid_input"),
        ([1, 2], "invalid_input"),
    ],
)
def test_invalid_json_submissions_are_422(client: TestClient, body: object, code: str) -> None:
    assert_error_shape(client.post("/v1/jobs", json=body), 422, code)


def test_malformed_json_is_422(client: TestClient) -> None:
    response = client.post("/v1/jobs", content=b'{"model": ', headers={"content-type": "application/json"})
    assert_error_shape(response, 422, "invalid_input")


def test_huge_json_is_413(client: TestClient) -> None:
    body = b'{"model": "' + b"x" * 100_000 + b'"}'
    response = client.post("/v1/jobs", content=body, headers={"content-type": "application/json"})
    assert_error_shape(response, 413, "payload_too_large")


def test_wrong_content_type_is_415(client: TestClient) -> None:
    response = client.post("/v1/jobs", content=b"model=x", headers={"content-type": "text/plain"})
    assert_error_shape(response, 415, "unsupported_media_type")


def test_text_upload_is_415(client: TestClient) -> None:
    response = client.post(
        "/v1/jobs",
        files={"file": ("notes.txt", b"hello, not an image", "text/plain")},
        data={"model": "efficientnet_lite0"},
    )
    assert_error_shape(response, 415, "unsupported_media_type")


def test_empty_upload_is_415(client: TestClient) -> None:
    response = client.post(
        "/v1/jobs", files={"file": ("empty.jpg", b"", "image/jpeg")}, data={"model": "efficientnet_lite0"}
    )
    assert_error_shape(response, 415)


def test_truncated_jpeg_is_422(client: TestClient, seeded: tuple[Path, Path]) -> None:
    data = (seeded[1] / GOLDFINCH).read_bytes()
    response = client.post(
        "/v1/jobs",
        files={"file": ("cut.jpg", data[: len(data) // 2], "image/jpeg")},
        data={"model": "efficientnet_lite0"},
    )
    assert_error_shape(response, 422, "invalid_image")


def test_oversized_upload_is_413(client: TestClient) -> None:
    response = client.post(
        "/v1/jobs",
        files={"file": ("big.jpg", b"\xff" * (3 * 1024 * 1024), "image/jpeg")},
        data={"model": "efficientnet_lite0"},
    )
    assert_error_shape(response, 413, "payload_too_large")


def test_multipart_without_file_is_422(client: TestClient) -> None:
    response = client.post("/v1/jobs", data={"model": "efficientnet_lite0"}, files={"other": ("x", b"1")})
    assert_error_shape(response, 422, "invalid_input")


def test_unknown_and_malformed_job_ids(client: TestClient) -> None:
    assert_error_shape(client.get("/v1/jobs/" + "0" * 32), 404, "not_found")
    assert_error_shape(client.get("/v1/jobs/not-a-job-id"), 422, "invalid_input")
    assert_error_shape(client.get("/v1/jobs/" + "a" * 33), 422)


def test_cancel_a_finished_job_is_409(client: TestClient) -> None:
    response = client.post("/v1/jobs", json={"model": "efficientnet_lite0", "image": GOLDFINCH})
    wait_for_job(client, response.headers["location"])
    assert_error_shape(client.delete(response.headers["location"]), 409, "conflict")
    assert_error_shape(client.delete("/v1/jobs/" + "1" * 32), 404)


def test_request_id_is_echoed(client: TestClient) -> None:
    response = client.post(
        "/v1/jobs", json={"model": "efficientnet_lite0", "image": GOLDFINCH}, headers={"X-Request-ID": "req-abc-123"}
    )
    assert response.headers["x-request-id"] == "req-abc-123"
    assert response.json()["request_id"] == "req-abc-123"
