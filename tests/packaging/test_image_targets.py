"""`make images`, `make container-e2e`, `make setup`'s torch and constraints, and CI's call of
the container run: the commands they run (make -n), and scripts/k8s-images.sh's engine choice
with a recording stand-in for the engine (the builds themselves run in `make container-e2e`)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def make_dry_run(*args: str) -> str:
    result = subprocess.run(["make", "-n", *args], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_make_images_and_container_e2e() -> None:
    images = make_dry_run("images", "CONTAINER_ENGINE=podman")
    assert 'CONTAINER_ENGINE="podman" scripts/k8s-images.sh' in images
    e2e = make_dry_run("container-e2e", "CONTAINER_ENGINE=docker")
    assert 'CONTAINER_ENGINE="docker"' in e2e and "-m scripts.container_e2e" in e2e


def test_setup_installs_the_chosen_torch_and_everything_at_the_constraints_versions() -> None:
    setup = make_dry_run("-B", ".venv/.installed", "TORCH_VARIANT=cpu")
    assert 'TORCH_VARIANT="cpu" scripts/install-torch.sh' in setup
    (install,) = [line for line in setup.splitlines() if "-e libs/common" in line]
    assert "-c requirements/constraints.txt" in install
    assert "-r requirements/constraints.txt" not in install


def test_ci_runs_the_container_e2e() -> None:
    ci = (REPO / ".ci" / "run").read_text()
    assert ".ci/containers/container-e2e.sh" in ci
    assert "make container-e2e" in (REPO / ".ci" / "containers" / "container-e2e.sh").read_text()


def fake_engine(tmp_path: Path, name: str) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    engine = bin_dir / name
    engine.write_text(f'#!/bin/sh\necho "{name} $*" >> {tmp_path}/calls\n')
    engine.chmod(0o755)
    return bin_dir


@pytest.mark.parametrize("engines", [["podman"], ["docker", "podman"]])
def test_k8s_images_detects_the_engine_and_passes_the_build_flags(tmp_path: Path, engines: list[str]) -> None:
    for engine in engines:
        bin_dir = fake_engine(tmp_path, engine)
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "IMAGE_TAG": "9.9.9",
        "LOAD": "0",
        "IMAGE_BUILD_FLAGS": "--pull=never --network host",
        "WORKER_BUILD_FLAGS": "--build-arg TORCHVISION_VERSION=none",
    }
    result = subprocess.run([str(REPO / "scripts" / "k8s-images.sh")], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    calls = (tmp_path / "calls").read_text().splitlines()
    expected = engines[0]  # docker when it is there
    assert [c.split()[:2] for c in calls] == [[expected, "build"]] * 3
    gateway, results, worker = calls
    assert "--file services/gateway/Dockerfile --tag classifier-gateway:9.9.9 --pull=never --network host ." in gateway
    assert "--tag classifier-results:9.9.9" in results
    assert "--tag classifier-worker:9.9.9 --pull=never --network host --build-arg TORCH_VARIANT=cpu" in worker
    assert worker.endswith("--build-arg TORCHVISION_VERSION=none .")


def test_k8s_images_builds_the_onnx_only_worker_on_request(tmp_path: Path) -> None:
    bin_dir = fake_engine(tmp_path, "podman")
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "IMAGE_TAG": "9.9.9",
        "LOAD": "0",
        "IMAGE_BUILD_FLAGS": "--pull=never",
        "WORKER_BUILD_FLAGS": "--build-arg TORCHVISION_VERSION=none",
        "ONNX_WORKER": "1",
    }
    result = subprocess.run([str(REPO / "scripts" / "k8s-images.sh")], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    *_, worker, onnx = (tmp_path / "calls").read_text().splitlines()
    assert "--tag classifier-worker:9.9.9 " in worker
    # The Dockerfile's onnx target, tagged for a pool's image.tagSuffix -onnx; the torch build's flags stay out.
    assert onnx.endswith(
        "--file services/classifier-worker/Dockerfile --tag classifier-worker:9.9.9-onnx --pull=never --target onnx ."
    )
    assert 'ONNX_WORKER="1"' in make_dry_run("images", "ONNX_WORKER=1")
