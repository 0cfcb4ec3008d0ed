"""The client against real servers: the one-process system (the suite's shared ``server``), and a
stalled one whose worker never starts, so that jobs stay queued (cancel, wait timeouts, a full
queue)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from classifier_common.catalog import get_spec
from tests.utils.server import Server, embedded_server

STALLED_QUEUE_LENGTH = 5
STALLED_RETRY_AFTER_S = 1


@pytest.fixture(scope="module")
def stalled(tmp_path_factory: pytest.TempPathFactory, seeded: tuple[Path, Path]) -> Iterator[Server]:
    """Accepts efficientnet_lite0 jobs (its weights are there) but its one pool also serves
    efficientnet_lite1, whose weights are not: the worker never starts and every job stays queued."""
    models_dir, gallery_dir = seeded
    root = tmp_path_factory.mktemp("stalled")
    only_lite0 = root / "models"
    only_lite0.mkdir()
    weights = get_spec("efficientnet_lite0").weights_file
    shutil.copy(models_dir / weights, only_lite0 / weights)
    with embedded_server(
        root,
        only_lite0,
        gallery_dir,
        wait_for="/healthz",
        CLASSIFIER_POOLS="stalled=efficientnet_lite0,efficientnet_lite1",
        CLASSIFIER_QUEUE_MAX_LENGTH=str(STALLED_QUEUE_LENGTH),
        CLASSIFIER_BROKER_RETRY_AFTER_S=str(STALLED_RETRY_AFTER_S),
    ) as running:
        yield running
