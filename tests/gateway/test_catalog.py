"""GET /v1/models, /v1/images, /v1/images/{name}, /v1/info, health and metrics."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from tests.utils.api import assert_error_shape


def _wait_ready(client: TestClient) -> None:
    deadline = time.monotonic() + 60
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, client.get("/readyz").json()
        time.sleep(0.1)


def test_models(client: TestClient) -> None:
    _wait_ready(client)
    models = {m["name"]: m for m in client.get("/v1/models").json()}
    lite0 = models["efficientnet_lite0"]
    assert lite0 == {
        "name": "efficientnet_lite0",
        "architecture": "efficientnet-lite0",
        "input_size": 224,
        "num_classes": 1000,
        "available": True,
        "loaded": True,
        "pool": "default",  # CLASSIFIER_MODELS without CLASSIFIER_POOLS: the one pool serving them
        "pool_ready": True,
    }
    assert models["efficientnet_lite2"]["input_size"] == 260
    assert models["efficientnet_lite2"]["available"] and not models["efficientnet_lite2"]["loaded"]
    assert models["efficientnet_lite2"]["pool"] is None
    assert not models["resnet18"]["available"]
    assert {"resnet18", "resnet50", "mobilenet_v3_large", "vgg16"} <= set(models)


def test_images_and_info(client: TestClient) -> None:
    images = client.get("/v1/images").json()
    assert len(images) == 41
    goldfinch = next(i for i in images if i["name"] == "n01531178_goldfinch.JPEG")
    assert goldfinch["width"] > 0 and goldfinch["height"] > 0 and goldfinch["bytes"] > 1000
    response = client.get(goldfinch["url"])
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    assert len(response.content) == goldfinch["bytes"]
    info = client.get("/v1/info").json()
    assert set(info) == {"models", "images", "max_upload_bytes", "accepted_formats", "accepted_media_types"}
    # what an upload must be, so that a client can check a file before sending it
    assert info["max_upload_bytes"] == 2 * 1024 * 1024  # the fixture's CLASSIFIER_MAX_UPLOAD_BYTES
    assert info["accepted_formats"] == ["BMP", "GIF", "JPEG", "PNG", "TIFF", "WEBP"]
    assert "image/jpeg" in info["accepted_media_types"] and "image/webp" in info["accepted_media_types"]
    assert "efficientnet_lite0" in info["models"] and "resnet18" not in info["models"]
    assert "n01531178_goldfinch.JPEG" in info["images"] and "labels.csv" not in info["images"]


def test_gallery_names_never_reach_outside(client: TestClient) -> None:
    for name in ["..%2F..%2Fetc%2Fpasswd", "labels.csv", ".seeded", "%2Fetc%2Fpasswd"]:
        assert client.get(f"/v1/images/{name}").status_code == 404


def test_health_ready_metrics(client: TestClient) -> None:
    _wait_ready(client)
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and set(ready["checks"]) >= {"store", "broker", "models", "worker"}
    client.post("/v1/jobs", json={"model": "efficientnet_lite0", "image": "n01531178_goldfinch.JPEG"})
    text = client.get("/metrics").text
    for name in (
        "classifier_http_requests_total",
        "classifier_jobs_submitted_total",
        "classifier_backlog_jobs",
        'classifier_jobs{status="succeeded"}',
        "classifier_model_loaded",
    ):
        assert name in text, name
    assert 'route="/v1/jobs"' in text


def test_unknown_route_uses_the_error_shape(client: TestClient) -> None:
    assert_error_shape(client.get("/v1/nothing-here"), 404, "not_found")
    assert_error_shape(client.put("/v1/jobs"), 405)


def test_openapi_documents_both_bodies(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]
    assert {"application/json", "multipart/form-data"} <= set(body)
    assert "/v1/jobs/{job_id}" in spec["paths"]


def test_api_docs_are_served_without_a_cdn(client: TestClient) -> None:
    page = client.get("/docs").text
    assert "/docs/assets/swagger-ui-bundle.js" in page and "cdn" not in page.lower()
    bundle = client.get("/docs/assets/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and len(bundle.content) > 500_000
    assert client.get("/docs/assets/swagger-ui.css").status_code == 200
    assert client.get("/redoc").status_code == 404
