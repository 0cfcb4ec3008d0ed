"""Through the single base URL, the way a user calls it: submit, follow Location, read labels."""

from __future__ import annotations

import httpx
import pytest

from tests.utils.api import assert_error_shape, wait_for_job

GOLDFINCH = "n01531178_goldfinch.JPEG"


def test_gallery_job_through_the_front_door(api: httpx.Client) -> None:
    response = api.post("/v1/jobs", json={"model": "efficientnet_lite0", "image": GOLDFINCH})
    assert response.status_code == 202, response.text
    assert api.get(response.headers["location"]).json()["status"] in {"queued", "running", "succeeded"}
    job = wait_for_job(api, response.headers["location"])
    assert job["status"] == "succeeded"
    assert job["result"]["predictions"][0]["label"] == "goldfinch"


def test_upload_job_through_the_front_door(api: httpx.Client) -> None:
    data = api.get("/v1/images/n07747607_orange.JPEG").content
    response = api.post(
        "/v1/jobs", files={"file": ("fruit.jpg", data, "image/jpeg")}, data={"model": "efficientnet_lite1"}
    )
    assert response.status_code == 202, response.text
    job = wait_for_job(api, response.headers["location"])
    assert job["result"]["predictions"][0]["label"] == "orange"


def test_catalog_routes(api: httpx.Client) -> None:
    names = {m["name"] for m in api.get("/v1/models").json() if m["loaded"]}
    assert {"efficientnet_lite0", "efficientnet_lite1"} <= names
    assert GOLDFINCH in api.get("/v1/info").json()["images"]
    assert api.get("/docs").status_code == 200
    assert api.get("/openapi.json").json()["info"]["title"]


def test_error_paths(api: httpx.Client) -> None:
    assert_error_shape(api.get("/v1/jobs/" + "f" * 32), 404, "not_found")
    assert_error_shape(api.post("/v1/jobs", json={"model": "nope", "image": GOLDFINCH}), 422, "unknown_model")
    assert_error_shape(api.post("/v1/jobs", json={"model": "efficientnet_lite0", "image": "nope.jpg"}), 422)
    text = api.post("/v1/jobs", files={"file": ("a.txt", b"text", "text/plain")}, data={"model": "efficientnet_lite0"})
    assert_error_shape(text, 415)
    big = api.post(
        "/v1/jobs",
        files={"file": ("big.jpg", b"\0" * (11 * 1024 * 1024), "image/jpeg")},
        data={"model": "efficientnet_lite0"},
    )
    assert_error_shape(big, 413, "payload_too_large")


def test_long_poll_returns_when_done(api: httpx.Client) -> None:
    response = api.post("/v1/jobs", json={"model": "efficientnet_lite1", "image": "n02793495_barn.JPEG"})
    job = api.get(response.headers["location"], params={"wait": 20}).json()
    assert job["status"] == "succeeded"


def test_submit_and_wait_answers_the_finished_job(api: httpx.Client) -> None:
    """One request: the gateway hears the worker's finished-job notice and answers with the job."""
    data = api.get("/v1/images/n01531178_goldfinch.JPEG").content
    response = api.post(
        "/v1/jobs",
        params={"wait": 20},
        files={"file": ("bird.jpg", data, "image/jpeg")},
        data={"model": "efficientnet_lite0"},
    )
    assert response.status_code == 200, response.text
    job = response.json()
    assert job["status"] == "succeeded" and job["result"]["predictions"][0]["label"] == "goldfinch"
    assert api.get(response.headers["location"]).json() == job


def test_each_model_goes_to_the_pool_serving_it_and_an_unserved_one_is_refused(api: httpx.Client) -> None:
    models = {m["name"]: m for m in api.get("/v1/models").json()}
    for name in ("efficientnet_lite0", "efficientnet_lite1"):
        assert models[name]["pool"] and models[name]["pool_ready"], models[name]
        response = api.post("/v1/jobs", json={"model": name, "image": GOLDFINCH})
        assert response.status_code == 202, response.text
        assert wait_for_job(api, response.headers["location"])["status"] == "succeeded"
    unserved = [name for name, m in models.items() if m["available"] and m["pool"] is None]
    if not unserved:
        pytest.skip("every model this deployment has weights for is served by a pool")
    refused = api.post("/v1/jobs", json={"model": unserved[0], "image": GOLDFINCH})
    body = assert_error_shape(refused, 422, "model_not_served")
    assert set(body["error"]["details"]["served_models"]) >= {"efficientnet_lite0", "efficientnet_lite1"}
