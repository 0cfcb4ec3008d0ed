"""`python -m classifier_gateway` is the gateway alone: with the in-process queue nothing would
ever run its jobs, so it refuses to start and names the one-process system instead."""

from __future__ import annotations

import os
import subprocess
import sys

from devstack.ports import free_port


def test_the_gateway_alone_refuses_the_in_process_queue(tmp_path) -> None:
    env = {
        **os.environ,
        "CLASSIFIER_BROKER_URL": "memory://",
        "CLASSIFIER_PORT": str(free_port()),
        "CLASSIFIER_STORE_URL": f"sqlite:///{tmp_path}/jobs.db",
        "CLASSIFIER_SPOOL_DIR": str(tmp_path / "queue"),
        "CLASSIFIER_LOG_FORMAT": "text",
    }
    result = subprocess.run(
        [sys.executable, "-m", "classifier_gateway"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "classifier_standalone" in result.stdout + result.stderr
    assert not (tmp_path / "queue").exists()  # nothing was accepted into a spool nobody reads
