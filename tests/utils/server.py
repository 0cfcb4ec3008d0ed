"""Start the one-process system the way `make run` does (`python -m classifier_standalone`: gateway,
results service and worker threads in one process) as a subprocess on a free port, for tests that need a real
server at a real URL: the browser tests and the CLI tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from devstack.embedded import embedded_env
from devstack.paths import REPO
from devstack.ports import free_port

START_TIMEOUT_S = 120.0  # loading the model and its warm-up inference take a few seconds on 2 cores


@dataclass(frozen=True)
class Server:
    url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _wait_ready(url: str, process: subprocess.Popen, log_path: Path, path: str = "/readyz") -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    last = "no answer"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            response = httpx.get(f"{url}{path}", timeout=2)
            if response.status_code == 200:
                return
            last = response.text
        except httpx.TransportError as exc:
            last = repr(exc)
        time.sleep(0.2)
    raise RuntimeError(
        f"the server was not ready after {START_TIMEOUT_S:.0f}s ({last}):\n{log_path.read_text()[-3000:]}"
    )


@contextmanager
def embedded_server(
    state_dir: Path, models_dir: Path, gallery_dir: Path, wait_for: str = "/readyz", **env: str
) -> Iterator[Server]:
    """The server, answering 200 on ``wait_for`` (``/healthz`` for a server that is meant never to
    be ready); stopped with SIGTERM when the block ends. ``env`` adds or overrides CLASSIFIER_* variables."""
    port = free_port()
    environment = {**os.environ, **embedded_env(port, state_dir, models_dir, gallery_dir, **env)}
    url = f"http://127.0.0.1:{port}"
    log_path = state_dir / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "classifier_standalone"],
            env=environment,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            _wait_ready(url, process, log_path, wait_for)
            yield Server(url=url, log_path=log_path)
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
