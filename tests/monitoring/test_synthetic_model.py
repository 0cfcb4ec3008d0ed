"""The experiments' stand-in model `synthetic_sleep`: present only with
CLASSIFIER_SYNTHETIC_SERVICE_MS, and then a job on it takes that service time per image. An
experiment with several pools gives each pool its own name for it, `synthetic_sleep_<pool>`.

Run against the embedded system (gateway + results routes + worker threads in this process);
the catalog entry is removed again after each test so no other test sees it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from classifier_common.catalog import CATALOG, SYNTHETIC_MODEL, is_synthetic, register_synthetic_models
from classifier_common.config import Settings
from classifier_standalone.app import create_app
from tests.utils.settings import embedded_settings

IMAGE = "n01440764_tench.JPEG"


@pytest.fixture(autouse=True)
def clean_catalog() -> Iterator[None]:
    yield
    for name in [n for n in CATALOG if is_synthetic(n)]:
        del CATALOG[name]


def wait_ready(client: TestClient) -> None:
    deadline = time.monotonic() + 60
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, client.get("/readyz").json()
        time.sleep(0.1)


def test_without_the_setting_the_synthetic_model_does_not_exist(tmp_path: Path, seeded: tuple[Path, Path]) -> None:
    # The catalog is the subject, not the runtime: torch, the reference, starts without a check.
    settings = embedded_settings(tmp_path, seeded, runtime="torch")
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


def test_each_pool_may_name_a_synthetic_model_of_its_own() -> None:
    assert is_synthetic(SYNTHETIC_MODEL) and is_synthetic("synthetic_sleep_big-gpu")
    assert not is_synthetic("synthetic_sleep_") and not is_synthetic("synthetic_sleepy")
    assert not is_synthetic("efficientnet_lite0")
    settings = Settings(pools="lite=synthetic_sleep_lite;big=synthetic_sleep_big", synthetic_service_ms=100)
    assert settings.pool_for_model("synthetic_sleep_big") == "big"
    with pytest.raises(ValidationError, match="unknown model 'synthetic_sleepy'"):
        Settings(pools="lite=synthetic_sleepy")

    specs = register_synthetic_models(["synthetic_sleep_lite", "efficientnet_lite0", "synthetic_sleep_big"])
    assert [s.name for s in specs] == [SYNTHETIC_MODEL, "synthetic_sleep_lite", "synthetic_sleep_big"]
    assert {s.family for s in specs} == {"synthetic"}
    assert CATALOG["synthetic_sleep_big"].family == "synthetic"
    assert CATALOG["efficientnet_lite0"].family == "efficientnet_lite"  # a real model stays as it is
