"""The experiments' stand-in model `synthetic_sleep`: present only with
CLASSIFIER_SYNTHETIC_SERVICE_MS, and then a job on it takes that service time per image.

Run against the embedded system (gateway + results routes + worker threads in this process);
the catalog entry is removed again after each test so no other test sees it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from classifier_common.catalog import CATALOG, SYNTHETIC_MODEL
from classifier_standalone.app import create_app
from tests.gateway.conftest import embedded_settings

IMAGE = "n01440764_tench.JPEG"


@pytest.fixture(autouse=True)
def clean_catalog() -> Iterator[None]:
    yield
    CATALOG.pop(SYNTHETIC_MODEL, None)


def wait_ready(client: TestClient) -> None:
    deadline = time.monotonic() + 60
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, client.get("/readyz").json()
        time.sleep(0.1)


def test_without_the_setting_the_synthetic_model_does_not_exist(tmp_path: Path, seeded: tuple[Path, Path]) -> None:
    settings = embedded_settings(tmp_path, seeded)
    assert settings.synthetic_service_ms is None
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        assert SYNTHETIC_MODEL not in {m["name"] for m in client.get("/v1/models").json()}
        response = client.post("/v1/jobs", json={"model": SYNTHETIC_MODEL, "image": IMAGE})
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "unknown_model"


def test_with_the_setting_a_job_takes_the_service_time(tmp_path: Path, seeded: tuple[Path, Path]) -> None:
    settings = embedded_settings(
        tmp_path, seeded, models=[SYNTHETIC_MODEL], synthetic_service_ms=300, result_cache=False
    )
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        models = {m["name"]: m for m in client.get("/v1/models").json()}
        assert models[SYNTHETIC_MODEL]["available"] and models[SYNTHETIC_MODEL]["loaded"]
        # Only what CLASSIFIER_MODELS names is loaded: the real models stay unloaded.
        assert not models["efficientnet_lite0"]["loaded"]
        submitted = client.post("/v1/jobs", json={"model": SYNTHETIC_MODEL, "image": IMAGE})
        assert submitted.status_code == 202, submitted.text
        job = client.get(submitted.headers["location"], params={"wait": 20}).json()
    assert job["status"] == "succeeded", job
    result = job["result"]
    assert result["model_version"] == "synthetic-300ms"
    assert result["inference_ms"] >= 300
    assert {p["label"] for p in result["predictions"]} == {"synthetic"}
