"""The end-to-end suite runs against ONE base URL: BASE_URL when set (the ingress on kind:
`make e2e`), otherwise a local multi-process stack behind nginx that this conftest starts
(the real RabbitMQ, SQLite, two worker pools of one worker each)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devstack.isolated import isolated_stack
from tests.utils.api import wake_workers


@pytest.fixture(scope="session")
def base_url(tmp_path_factory: pytest.TempPathFactory, seeded: tuple[Path, Path]) -> Iterator[str]:
    given = os.environ.get("BASE_URL")
    if given:
        yield given.rstrip("/")
        return
    models_dir, gallery_dir = seeded
    stack = isolated_stack(
        tmp_path_factory.mktemp("e2e-stack"),
        workers=1,
        pools="lite=efficientnet_lite0;big=efficientnet_lite1",  # lite2's weights are there: no pool serves it
        CLASSIFIER_MODELS_DIR=str(models_dir),
        CLASSIFIER_GALLERY_DIR=str(gallery_dir),
    )
    try:
        stack.up(timeout=120)
        yield stack.base_url
    finally:
        stack.down()
        stack.delete_queues()


# The models the suite asks for, and how long a pool scaled to zero may take to serve again.
E2E_MODELS = {"efficientnet_lite0", "efficientnet_lite1"}
WAKE_TIMEOUT_S = float(os.environ.get("E2E_WAKE_TIMEOUT_S", "300"))


@pytest.fixture(scope="session")
def api(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=60) as client:
        # With KEDA the workers may be at zero: wake them first, so no test's own (short) wait
        # has to cover a cold start.
        wake_workers(client, E2E_MODELS, "n01440764_tench.JPEG", WAKE_TIMEOUT_S)
        yield client
