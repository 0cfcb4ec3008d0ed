"""The embedded system (`make run`) killed with jobs still queued: after a restart every accepted
job finishes. The in-process queue spools messages to disk until they are acked."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from classifier_client import Client, Retry
from devstack.ports import free_port

pytestmark = pytest.mark.slow

JOBS = 30


def _start(tmp_path: Path, seeded: tuple[Path, Path], port: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "CLASSIFIER_PORT": str(port),
        "CLASSIFIER_STORE_URL": f"sqlite:///{tmp_path}/jobs.db",
        "CLASSIFIER_SPOOL_DIR": str(tmp_path / "queue"),
        "CLASSIFIER_MODELS_DIR": str(seeded[0]),
        "CLASSIFIER_GALLERY_DIR": str(seeded[1]),
        "CLASSIFIER_MODELS": "efficientnet_lite2",
        "CLASSIFIER_RESULT_CACHE": "false",
    }
    log = (tmp_path / "gateway.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "classifier_standalone"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "gateway.log").read_text()[-2000:]
        time.sleep(0.2)


def test_sigkill_with_queued_jobs_then_restart_loses_nothing(tmp_path: Path, seeded: tuple[Path, Path]) -> None:
    port = free_port()
    proc = _start(tmp_path, seeded, port)
    client = Client(f"http://127.0.0.1:{port}", timeout=10, retry=Retry(attempts=0))
    ids = [client.submit("efficientnet_lite2", image="n01531178_goldfinch.JPEG")["id"] for _ in range(JOBS)]
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    with sqlite3.connect(tmp_path / "jobs.db") as db:
        unfinished = db.execute("SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')").fetchone()[0]
    assert unfinished > 0, "every job finished before the kill: the test proves nothing"

    proc = _start(tmp_path, seeded, port)
    try:
        jobs = [client.wait(i, timeout=60) for i in ids]
        assert [j["status"] for j in jobs] == ["succeeded"] * JOBS
        assert all(j["result"]["predictions"][0]["label"] == "goldfinch" for j in jobs)
        assert not list((tmp_path / "queue").rglob("*.msg"))
    finally:
        proc.terminate()
        # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status says why.
        assert proc.wait(30) in (0, -signal.SIGTERM)
        assert "Application shutdown complete" in (tmp_path / "gateway.log").read_text()
