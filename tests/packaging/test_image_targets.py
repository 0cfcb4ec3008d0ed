"""`make images`, `make container-e2e`, `make setup`'s torch and constraints, and CI's call of
the container run: the commands they run (make -n), and scripts/k8s-images.sh's engine choice
with a recording stand-in for the engine (the builds themselves run in `make container-e2e`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from devstack.paths import REPO
from tests.utils.commands import system_path_without


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


@pytest.fixture(scope="module")
def system_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The system's commands without any docker or podman installed here."""
    return system_path_without(tmp_path_factory.mktemp("system"), "docker", "podman")


def fake_engine(tmp_path: Path, name: str, daemon: bool = True) -> Path:
    """A stand-in for the engine that records its calls; ``daemon=False``: a docker command
    whose daemon does not answer (`docker version` fails, as without a running daemon)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    engine = bin_dir / name
    down = "" if daemon else '[ "$1" = version ] && { echo "Cannot connect to the Docker daemon" >&2; exit 1; }\n'
    engine.write_text(f'#!/bin/sh\n{down}[ "$1" = version ] && exit 0\necho "{name} $*" >> {tmp_path}/calls\n')
    engine.chmod(0o755)
    return bin_dir


# (engines installed, whether docker's daemon answers) -> the engine chosen
ENGINE_CHOICES = [
    (["podman"], True, "podman"),
    (["docker", "podman"], True, "docker"),
    # A docker command without a running daemon (the CLI alone, Docker Desktop not started)
    # cannot build: podman, when it is there, is used instead.
    (["docker", "podman"], False, "podman"),
    (["docker"], False, "docker"),  # nothing else: docker's own error says the daemon is down
]


@pytest.mark.parametrize(("engines", "daemon", "expected"), ENGINE_CHOICES)
def test_k8s_images_detects_the_engine_and_passes_the_build_flags(
    tmp_path: Path, system_path: str, engines: list[str], daemon: bool, expected: str
) -> None:
    for engine in engines:
        bin_dir = fake_engine(tmp_path, engine, daemon=daemon or engine != "docker")
    env = {
        "PATH": f"{bin_dir}:{system_path}",
        "IMAGE_TAG": "9.9.9",
        "LOAD": "0",
        "IMAGE_BUILD_FLAGS": "--pull=never --network host",
        "WORKER_BUILD_FLAGS": "--build-arg TORCHVISION_VERSION=none",
    }
    result = subprocess.run([str(REPO / "scripts" / "k8s-images.sh")], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    calls = (tmp_path / "calls").read_text().splitlines()
    assert [c.split()[:2] for c in calls] == [[expected, "build"]] * 3
    gateway, results, worker = calls
    assert "--file services/gateway/Dockerfile --tag classifier-gateway:9.9.9 --pull=never --network host ." in gateway
    assert "--tag classifier-results:9.9.9" in results
    assert "--tag classifier-worker:9.9.9 --pull=never --network host --build-arg TORCH_VARIANT=cpu" in worker
    assert worker.endswith("--build-arg TORCHVISION_VERSION=none .")


@pytest.mark.parametrize(("engines", "daemon", "expected"), ENGINE_CHOICES)
def test_make_and_the_container_e2e_detect_the_same_engine(
    tmp_path: Path, system_path: str, engines: list[str], daemon: bool, expected: str
) -> None:
    for engine in engines:
        bin_dir = fake_engine(tmp_path, engine, daemon=daemon or engine != "docker")
    env = {"PATH": f"{bin_dir}:{system_path}", "HOME": str(tmp_path)}
    made = subprocess.run(["make", "-n", "images"], cwd=REPO, env=env, capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    assert f'CONTAINER_ENGINE="{expected}" scripts/k8s-images.sh' in made.stdout
    script = (
        "import os, sys; os.environ.pop('CONTAINER_ENGINE', None); "
        "from scripts.container_e2e import detect_engine; print(detect_engine())"
    )
    chosen = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True)
    assert chosen.stdout.strip() == expected, chosen.stderr


def test_without_docker_or_podman_the_scripts_say_so(system_path: str) -> None:
    env = {"PATH": system_path, "IMAGE_TAG": "9.9.9", "LOAD": "0"}
    result = subprocess.run([str(REPO / "scripts" / "k8s-images.sh")], env=env, capture_output=True, text=True)
    assert result.returncode == 1 and "neither docker nor podman is installed" in result.stderr


def test_k8s_images_builds_the_onnx_only_worker_on_request(tmp_path: Path, system_path: str) -> None:
    bin_dir = fake_engine(tmp_path, "podman")
    env = {
        "PATH": f"{bin_dir}:{system_path}",
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
