"""The `classifier` command through its installed entry point, against the real embedded system."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.utils.server import Server, embedded_server

CLASSIFIER = Path(sys.executable).parent / "classifier"  # the console script pip made for the gateway package


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, seeded: tuple[Path, Path]) -> Iterator[Server]:
    models_dir, gallery_dir = seeded
    with embedded_server(tmp_path_factory.mktemp("cli-server"), models_dir, gallery_dir) as running:
        yield running


@pytest.fixture
def classifier(server: Server) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Runs `classifier ARGS...` with CLASSIFIER_URL pointing at the test server."""
    if not CLASSIFIER.is_file():
        pytest.fail(f"{CLASSIFIER} is missing: `pip install -e services/gateway` creates it")

    def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "CLASSIFIER_URL": server.url, "COLUMNS": "120"}
        return subprocess.run(
            [str(CLASSIFIER), *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
        )

    return run
