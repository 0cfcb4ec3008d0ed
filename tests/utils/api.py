"""Helpers for talking to the API in tests (any base URL or a TestClient)."""

from __future__ import annotations

import time
from typing import Any

import httpx

FINISHED = {"succeeded", "failed", "canceled"}


def assert_error_shape(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "request_id"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert "code" in body["error"] and "details" in body["error"]
    assert body["request_id"] == response.headers["x-request-id"]
    if code is not None:
        assert body["error"]["code"] == code, body
    return body


def wait_for_job(client: httpx.Client, location: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(location, params={"wait": 5})
        assert response.status_code == 200, response.text
        job = response.json()
        if job["status"] in FINISHED:
            return job
        assert time.monotonic() < deadline, f"job still {job['status']} after {timeout}s"


def wake_workers(client: httpx.Client, models: set[str], image: str, timeout: float) -> dict[str, Any]:
    """Wait until workers serve: one job of each model in ``models`` finished, and each of them
    loaded by a running worker. A pool scaled to zero (KEDA) is woken only by a job in its own
    queue, so every model gets one (all submitted first: the pools wake together); its first
    worker needs the scale-up, the pod's start and the model load, longer than one job's wait in
    a test. Returns the first model's job."""
    deadline = time.monotonic() + timeout
    locations = []
    for model in sorted(models):
        response = client.post("/v1/jobs", json={"model": model, "image": image})
        assert response.status_code == 202, response.text
        locations.append(response.headers["location"])
    jobs = [wait_for_job(client, location, timeout=max(1.0, deadline - time.monotonic())) for location in locations]
    while True:
        loaded = {m["name"] for m in client.get("/v1/models").json() if m["loaded"]}
        if models <= loaded:
            return jobs[0]
        assert time.monotonic() < deadline, f"models {sorted(models - loaded)} not loaded after {timeout}s"
        time.sleep(1)
