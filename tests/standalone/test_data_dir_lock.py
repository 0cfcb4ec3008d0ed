"""One process per data directory: a second `make run` over the same ./data refuses to start and
says why, instead of accepting jobs that would wait in a spool nobody consumes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from classifier_standalone.lock import DataDirInUse, lock_data_dir
from devstack.ports import free_port
from tests.utils.server import REPO, embedded_server


def test_the_lock_is_exclusive_and_names_its_holder(tmp_path: Path) -> None:
    held = lock_data_dir(tmp_path / "queue")
    with pytest.raises(DataDirInUse, match=rf"in use by another classifier process \(pid {os.getpid()}\)"):
        lock_data_dir(tmp_path / "queue")
    held.close()  # released (as when the process ends): the next one may take it
    lock_data_dir(tmp_path / "queue").close()


def test_a_second_server_on_the_same_data_refuses_to_start(tmp_path: Path, seeded: tuple[Path, Path]) -> None:
    models_dir, gallery_dir = seeded
    with embedded_server(tmp_path, models_dir, gallery_dir, wait_for="/healthz") as first:
        env = {
            **os.environ,
            "CLASSIFIER_HOST": "127.0.0.1",
            "CLASSIFIER_PORT": str(free_port()),
            "CLASSIFIER_STORE_URL": f"sqlite:///{tmp_path}/jobs.db",
            "CLASSIFIER_SPOOL_DIR": str(tmp_path / "queue"),
            "CLASSIFIER_MODELS_DIR": str(models_dir),
            "CLASSIFIER_GALLERY_DIR": str(gallery_dir),
            "CLASSIFIER_LOG_FORMAT": "text",
        }
        second = subprocess.Popen(
            [sys.executable, "-m", "classifier_standalone"],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            output, _ = second.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            second.kill()
            output, _ = second.communicate()
            pytest.fail(f"the second server started on the same data directory:\n{output[-2000:]}")
        assert second.returncode == 1, output
        assert f"{tmp_path / 'queue'} is in use by another classifier process" in output
        assert "CLASSIFIER_SPOOL_DIR" in output  # what to do about it
        assert httpx.get(f"{first.url}/healthz", timeout=5).status_code == 200  # the first one goes on
