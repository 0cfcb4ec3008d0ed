"""The end-to-end suite runs against ONE base URL: BASE_URL when set (the ingress on kind:
`make e2e`), otherwise a local multi-process stack behind nginx that this conftest starts
(the real RabbitMQ, SQLite, two workers)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devstack.isolated import isolated_stack


@pytest.fixture(scope="session")
def base_url(tmp_path_factory: pytest.TempPathFactory, seeded: tuple[Path, Path]) -> Iterator[str]:
    given = os.environ.get("BASE_URL")
    if given:
        yield given.rstrip("/")
        return
    models_dir, gallery_dir = seeded
    stack = isolated_stack(
        tmp_path_factory.mktemp("e2e-stack"),
        workers=2,
        CLASSIFIER_MODELS_DIR=str(models_dir),
        CLASSIFIER_GALLERY_DIR=str(gallery_dir),
        CLASSIFIER_MODELS="efficientnet_lite0,efficientnet_lite1",
    )
    try:
        stack.up(timeout=120)
        yield stack.base_url
    finally:
        stack.down()
        stack.delete_queues()


@pytest.fixture(scope="session")
def api(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=60) as client:
        yield client
