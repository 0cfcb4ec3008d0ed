from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from classifier_standalone.app import create_app
from tests.utils.settings import embedded_settings


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, seeded: tuple[Path, Path]) -> Iterator[TestClient]:
    """The one-process system (gateway + results service + worker threads) in this process."""
    settings = embedded_settings(tmp_path_factory.mktemp("embedded"), seeded, max_upload_bytes=2 * 1024 * 1024)
    with TestClient(create_app(settings)) as test_client:
        yield test_client
