"""scripts/install-torch.sh (`make setup`): which torch build it asks pip for, and the quick
fallback when PyTorch's index does not answer. pip is replaced by a script that records its
arguments (the choice is under test, not pip); the index is a real HTTP server or a closed port."""

from __future__ import annotations

import http.server
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.paths import REPO
from devstack.ports import free_port

SCRIPT = REPO / "scripts" / "install-torch.sh"


def pins() -> tuple[str, str]:
    lines = (REPO / "requirements" / "constraints.txt").read_text().splitlines()
    version = {line.split("==")[0]: line.split("==")[1] for line in lines if "==" in line}
    return version["torch"], version["torchvision"]


@pytest.fixture
def index() -> Iterator[str]:
    """A stand-in for https://download.pytorch.org/whl: any page answers 200."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"<html></html>")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def run(tmp_path: Path, index_base: str, **env: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    calls = tmp_path / "pip-calls"
    pip = tmp_path / "pip"
    pip.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    pip.chmod(0o755)
    bin_dir = tmp_path / "bin"  # no nvidia-smi here unless a test puts one
    bin_dir.mkdir(exist_ok=True)
    environment = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "PIP": str(pip),
        "PYTHON": os.environ.get("PYTHON", "python3"),
        "TORCH_INDEX_BASE": index_base,
        **env,
    }
    result = subprocess.run([str(SCRIPT)], env=environment, capture_output=True, text=True, timeout=60)
    return result, calls.read_text().splitlines() if calls.exists() else []


def test_a_linux_machine_without_a_gpu_gets_the_cpu_build(tmp_path: Path, index: str) -> None:
    torch, vision = pins()
    result, calls = run(tmp_path, index)
    assert result.returncode == 0, result.stderr
    (call,) = calls
    assert f"--index-url {index}/cpu" in call
    assert f"torch=={torch}+cpu" in call and f"torchvision=={vision}+cpu" in call


def test_a_machine_with_an_nvidia_gpu_gets_the_cuda_build(tmp_path: Path, index: str) -> None:
    (tmp_path / "bin").mkdir()
    smi = tmp_path / "bin" / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H100 (UUID: GPU-0)'\n")
    smi.chmod(0o755)
    torch, _ = pins()
    result, (call,) = run(tmp_path, index)
    assert result.returncode == 0, result.stderr
    assert f"--index-url {index}/cu128" in call and f"torch=={torch}+cu128" in call


@pytest.mark.parametrize("variant", ["cpu", "cu126"])
def test_torch_variant_overrides(tmp_path: Path, index: str, variant: str) -> None:
    result, (call,) = run(tmp_path, index, TORCH_VARIANT=variant)
    assert result.returncode == 0 and f"{index}/{variant}" in call and f"+{variant}" in call


def test_pypi_variant_takes_pips_own_index(tmp_path: Path, index: str) -> None:
    torch, _ = pins()
    result, (call,) = run(tmp_path, index, TORCH_VARIANT="pypi")
    assert result.returncode == 0
    assert "--index-url" not in call and f"torch=={torch}" in call and "+" not in call


def test_an_unreachable_index_falls_back_quickly_and_says_so(tmp_path: Path) -> None:
    torch, _ = pins()
    started = time.monotonic()
    result, (call,) = run(tmp_path, f"http://127.0.0.1:{free_port()}")  # nothing listens there
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 30
    assert "unreachable" in result.stdout
    assert "--index-url" not in call and f"torch=={torch}" in call and "+cpu" not in call


def test_an_index_that_never_answers_costs_the_probe_timeout_not_a_hang(tmp_path: Path) -> None:
    """A host that takes the connection and then says nothing (a proxy or firewall swallowing
    it): the probe gives up after TORCH_INDEX_TIMEOUT seconds and pip's own index is used."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # connections complete in the backlog; nothing ever reads or answers
    try:
        started = time.monotonic()
        result, (call,) = run(tmp_path, f"http://127.0.0.1:{silent.getsockname()[1]}", TORCH_INDEX_TIMEOUT="2")
        elapsed = time.monotonic() - started
    finally:
        silent.close()
    assert result.returncode == 0, result.stderr
    assert 2 <= elapsed < 20
    assert "unreachable" in result.stdout and "timed out" in result.stderr
    assert "--index-url" not in call and "+cpu" not in call


def test_an_unknown_variant_is_refused(tmp_path: Path, index: str) -> None:
    result, calls = run(tmp_path, index, TORCH_VARIANT="rocm")
    assert result.returncode == 2 and "TORCH_VARIANT" in result.stderr and not calls
