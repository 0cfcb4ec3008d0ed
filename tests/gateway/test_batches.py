"""POST /v1/batches and GET /v1/batches/{id} through the embedded system (in-process queue, real
EfficientNet-Lite0), once on SQLite and once on the Mongo adapter (mongomock)."""

from __future__ import annotations

import csv
import io
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mongomock
import pytest
from fastapi.testclient import TestClient

import classifier_standalone.app as standalone
from classifier_common.store.mongo import MongoJobStore
from tests.utils.api import assert_error_shape
from tests.utils.settings import embedded_settings

GOLDFINCH = "n01531178_goldfinch.JPEG"
ORANGE = "n07747607_orange.JPEG"
QUILT = "n04033995_quilt.JPEG"  # 236 kB
MICROPHONE = "n03759954_microphone.JPEG"  # 329 kB: over this server's per-file limit
MODEL = {"model": "efficientnet_lite0"}
MAX_UPLOAD = 300_000
MAX_BATCH_BYTES = 1_000_000
MAX_ITEMS = 8


@pytest.fixture(scope="module", params=["sqlite", "mongo-mongomock"])
def client(request: pytest.FixtureRequest, tmp_path_factory, seeded: tuple[Path, Path]) -> Iterator[TestClient]:
    settings = embedded_settings(
        tmp_path_factory.mktemp("batches"),
        seeded,
        max_upload_bytes=MAX_UPLOAD,
        batch_max_bytes=MAX_BATCH_BYTES,
        batch_max_items=MAX_ITEMS,
        runtime="torch",  # the reference runtime: no comparison of runtimes at start-up
    )
    with pytest.MonkeyPatch.context() as patch:
        if request.param == "mongo-mongomock":
            store = MongoJobStore("mongodb://mongomock/classifier_test", client=mongomock.MongoClient())
            patch.setattr(standalone, "open_store", lambda *_, **__: store)
        with TestClient(standalone.create_app(settings)) as test_client:
            yield test_client


@pytest.fixture(scope="module")
def gallery(seeded: tuple[Path, Path]) -> Path:
    return seeded[1]


def upload(gallery: Path, name: str, as_name: str | None = None) -> tuple[str, tuple[str, bytes, str]]:
    return "file", (as_name or name, (gallery / name).read_bytes(), "image/jpeg")


def wait_done(client: TestClient, location: str, timeout: float = 180.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(location)
        assert response.status_code == 200, response.text
        batch = response.json()
        if batch["status"] == "done":
            return batch
        assert time.monotonic() < deadline, f"batch still {batch['counts']} after {timeout}s"
        time.sleep(0.2)


def test_mixed_batch_accepts_each_good_item_and_refuses_each_bad_one(client: TestClient, gallery: Path) -> None:
    parts = [
        upload(gallery, GOLDFINCH, "bird.jpg"),
        ("file", ("notes.txt", b"not an image", "text/plain")),
        upload(gallery, MICROPHONE),
        ("image", (None, ORANGE)),
        ("image", (None, "n00000000_unicorn.JPEG")),
    ]
    response = client.post("/v1/batches", data=MODEL, files=parts)
    assert response.status_code == 202, response.text
    batch = response.json()
    assert response.headers["location"] == f"/v1/batches/{batch['id']}" == batch["status_url"]
    assert (batch["total"], batch["accepted"], batch["refused"]) == (5, 2, 3)
    items = batch["items"]
    assert [item["image"] for item in items] == ["bird.jpg", "notes.txt", MICROPHONE, ORANGE, "n00000000_unicorn.JPEG"]
    assert [item["status"] for item in items] == ["queued", "refused", "refused", "queued", "refused"]
    assert items[1]["error"]["code"] == "unsupported_media_type"
    assert items[2]["error"]["code"] == "payload_too_large"
    assert items[2]["error"]["details"] == {"max_bytes": MAX_UPLOAD, "bytes": (gallery / MICROPHONE).stat().st_size}
    assert items[4]["error"]["code"] == "unknown_image"
    assert batch["counts"]["refused"] == 3

    done = wait_done(client, response.headers["location"])
    assert done["counts"] == {
        "queued": 0, "running": 0, "succeeded": 2, "failed": 0, "canceled": 0, "refused": 3, "expired": 0
    }  # fmt: skip
    bird, orange = done["items"][0], done["items"][3]
    assert bird["result"]["predictions"][0]["label"] == "goldfinch"
    assert orange["result"]["predictions"][0]["label"] == "orange"
    job = client.get(bird["status_url"]).json()
    assert job["batch_id"] == batch["id"] and job["source"] == "upload" and job["image"] == "bird.jpg"
    assert client.get(orange["status_url"]).json()["source"] == "gallery"


def test_json_batch_of_gallery_names(client: TestClient) -> None:
    response = client.post("/v1/batches", json={**MODEL, "images": [GOLDFINCH, ORANGE]})
    assert response.status_code == 202, response.text
    done = wait_done(client, response.headers["location"])
    labels = [item["result"]["predictions"][0]["label"] for item in done["items"]]
    assert labels == ["goldfinch", "orange"]


def test_results_download_as_csv_and_json_lines(client: TestClient, gallery: Path) -> None:
    parts = [upload(gallery, GOLDFINCH), ("file", ("=HYPERLINK(1).txt", b"x", "text/plain")), ("image", (None, ORANGE))]
    location = client.post("/v1/batches", data=MODEL, files=parts).headers["location"]
    done = wait_done(client, location)

    for response in (
        client.get(location, params={"format": "csv"}),
        client.get(location, headers={"accept": "text/csv"}),
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/csv")
        assert "attachment" in response.headers["content-disposition"]
        rows = list(csv.DictReader(io.StringIO(response.text)))
        assert [row["status"] for row in rows] == ["succeeded", "refused", "succeeded"]
        assert rows[0]["label"] == "goldfinch" and float(rows[0]["score"]) > 0.5
        assert rows[1]["image"] == "'=HYPERLINK(1).txt"  # never a formula in a spreadsheet
        assert rows[1]["error_code"] == "unsupported_media_type"

    lines = client.get(location, headers={"accept": "application/x-ndjson"})
    assert lines.headers["content-type"].startswith("application/x-ndjson")
    assert [json.loads(line) for line in lines.text.splitlines()] == done["items"]
    assert client.get(location, params={"format": "jsonl"}).text == lines.text


def test_every_item_refused_is_422_with_each_reason(client: TestClient) -> None:
    parts = [("file", ("a.txt", b"a", "text/plain")), ("image", (None, "missing.jpg"))]
    body = assert_error_shape(client.post("/v1/batches", data=MODEL, files=parts), 422, "batch_refused")
    reasons = [item["error"]["code"] for item in body["error"]["details"]["items"]]
    assert reasons == ["unsupported_media_type", "unknown_image"]


def test_limits_on_items_and_bytes(client: TestClient, gallery: Path) -> None:
    too_many = client.post("/v1/batches", json={**MODEL, "images": [GOLDFINCH] * (MAX_ITEMS + 1)})
    assert assert_error_shape(too_many, 422, "too_many_items")["error"]["details"] == {"max_items": MAX_ITEMS}
    many_files = [("file", (f"{i}.txt", b"x", "text/plain")) for i in range(MAX_ITEMS + 2)]
    assert_error_shape(client.post("/v1/batches", data=MODEL, files=many_files), 422, "too_many_items")
    no_items = client.post("/v1/batches", files=[("model", (None, "efficientnet_lite0"))])
    assert_error_shape(no_items, 422, "too_many_items")

    heavy = [upload(gallery, QUILT, f"{i}.jpg") for i in range(5)]  # 5 x 236 kB > 1 MB in all
    body = assert_error_shape(client.post("/v1/batches", data=MODEL, files=heavy), 413, "payload_too_large")
    assert body["error"]["details"]["max_bytes"] == MAX_BATCH_BYTES
    info = client.get("/v1/info").json()
    assert (info["batch_max_items"], info["batch_max_bytes"]) == (MAX_ITEMS, MAX_BATCH_BYTES)


def test_whole_request_refusals(client: TestClient) -> None:
    assert_error_shape(client.post("/v1/batches", json={"model": "nope", "images": [GOLDFINCH]}), 422, "unknown_model")
    assert_error_shape(client.post("/v1/batches", json={**MODEL, "images": "x"}), 422, "invalid_input")
    assert_error_shape(client.post("/v1/batches", content=b"x", headers={"content-type": "text/plain"}), 415)
    unknown_field = client.post("/v1/batches", data=MODEL, files=[("images", (None, GOLDFINCH))])
    assert_error_shape(unknown_field, 422, "invalid_input")
    assert_error_shape(client.get("/v1/batches/" + uuid.uuid4().hex), 404, "not_found")
    assert_error_shape(client.get("/v1/batches/not-an-id"), 422, "invalid_input")
    assert_error_shape(client.get("/v1/batches/" + uuid.uuid4().hex, params={"format": "xml"}), 422)


def test_idempotency_key_covers_the_whole_batch(client: TestClient, gallery: Path) -> None:
    key = {"Idempotency-Key": uuid.uuid4().hex}
    parts = [upload(gallery, GOLDFINCH), ("image", (None, ORANGE))]
    first = client.post("/v1/batches", data=MODEL, files=parts, headers=key)
    assert first.status_code == 202 and "idempotent-replayed" not in first.headers
    again = client.post("/v1/batches", data=MODEL, files=parts, headers=key)
    assert again.status_code == 202 and again.headers["idempotent-replayed"] == "true"
    first_ids = [item["job_id"] for item in first.json()["items"]]
    assert again.json()["id"] == first.json()["id"]
    assert [item["job_id"] for item in again.json()["items"]] == first_ids

    other = client.post("/v1/batches", data=MODEL, files=parts[:1], headers=key)
    assert_error_shape(other, 422, "idempotency_key_reused")


def test_openapi_documents_both_endpoints_with_examples(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    post = document["paths"]["/v1/batches"]["post"]
    assert "mixed" in post["responses"]["202"]["content"]["application/json"]["examples"]
    assert {"multipart/form-data", "application/json"} <= set(post["requestBody"]["content"])
    assert any(p["name"] == "Idempotency-Key" for p in post["parameters"])
    assert {"413", "422", "429", "503"} <= set(post["responses"])
    get = document["paths"]["/v1/batches/{batch_id}"]["get"]
    content = get["responses"]["200"]["content"]
    assert {"application/json", "text/csv", "application/x-ndjson"} <= set(content)
    assert set(content["application/json"]["examples"]) == {"done", "in progress"}
