"""The gateway looks for a model's weights at most once a second, not at every submission (each
look is a stat() on the event loop), and still accepts weights seeded while it runs."""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from classifier_common.broker import memory
from classifier_common.catalog import ModelSpec, get_spec
from classifier_common.config import Settings
from classifier_common.lifecycle import StoreComponent, compose_app
from classifier_common.store.sqlite import SqliteJobStore
from classifier_gateway.api.routes import models as models_route
from classifier_gateway.main import Gateway
from tests.utils.api import assert_error_shape

IMAGE = "n01531178_goldfinch.JPEG"
LITE0 = get_spec("efficientnet_lite0")


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    path = tmp_path / "models"
    path.mkdir()
    return path


@pytest.fixture
def client(tmp_path: Path, models_dir: Path, seeded: tuple[Path, Path]) -> Iterator[TestClient]:
    url = f"memory://weights-{uuid.uuid4().hex}"
    settings = Settings(broker_url=url, models_dir=models_dir, gallery_dir=seeded[1], spool_dir=None, log_format="text")
    store = SqliteJobStore(tmp_path / "jobs.db")
    app = compose_app("gateway", [StoreComponent(store), Gateway(settings, store)], title="t", description="t")
    with TestClient(app) as test_client:
        yield test_client
    store.close()
    memory.forget_broker(url)


def _submit(client: TestClient):  # type: ignore[no-untyped-def]
    return client.post("/v1/jobs", json={"model": LITE0.name, "image": IMAGE})


def test_weights_seeded_while_the_gateway_runs_are_accepted_within_a_look(
    client: TestClient, models_dir: Path, seeded: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(models_route, "WEIGHTS_LOOK_S", 0.2)
    assert_error_shape(_submit(client), 422, "unknown_model")
    shutil.copy(LITE0.weights_path(seeded[0]), LITE0.weights_path(models_dir))
    time.sleep(0.3)
    assert _submit(client).status_code == 202


def test_the_weights_are_looked_for_once_a_second_not_per_submission(
    client: TestClient, models_dir: Path, seeded: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copy(LITE0.weights_path(seeded[0]), LITE0.weights_path(models_dir))
    looks: list[str] = []
    available = ModelSpec.available

    def counted(spec: ModelSpec, directory: Path) -> bool:
        looks.append(spec.name)
        return available(spec, directory)

    monkeypatch.setattr(ModelSpec, "available", counted)
    monkeypatch.setattr(models_route, "WEIGHTS_LOOK_S", 60.0)
    for _ in range(10):
        assert _submit(client).status_code == 202
    assert looks.count(LITE0.name) == 1, looks
