"""The `classifier` command through its installed entry point, against the real embedded system."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.utils.server import Server

CLASSIFIER = Path(sys.executable).parent / "classifier"  # the console script pip made for the client package


@pytest.fixture
def classifier(server: Server) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Runs `classifier ARGS...` with CLASSIFIER_URL pointing at the test server."""
    if not CLASSIFIER.is_file():
        pytest.fail(f"{CLASSIFIER} is missing: `pip install -e clients/python` creates it")

    def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "CLASSIFIER_URL": server.url, "COLUMNS": "120"}
        return subprocess.run(
            [str(CLASSIFIER), *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
        )

    return run
