from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from classifier_common.config import Settings
from classifier_standalone.app import create_app


def embedded_settings(tmp_path: Path, seeded: tuple[Path, Path], **overrides: object) -> Settings:
    models_dir, gallery_dir = seeded
    values: dict[str, object] = {
        "broker_url": f"memory://test-{uuid.uuid4().hex}",
        "store_url": f"sqlite:///{tmp_path}/jobs.db",
        "models_dir": models_dir,
        "gallery_dir": gallery_dir,
        "models": ["efficientnet_lite0"],
        "spool_dir": tmp_path / "queue",
        "log_format": "text",
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, seeded: tuple[Path, Path]) -> Iterator[TestClient]:
    """The one-process system (gateway + results service + worker threads) in this process."""
    settings = embedded_settings(tmp_path_factory.mktemp("embedded"), seeded, max_upload_bytes=2 * 1024 * 1024)
    with TestClient(create_app(settings)) as test_client:
        yield test_client
