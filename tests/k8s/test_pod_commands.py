"""The commands the chart puts in pods, run here for real with the volumes' paths mapped onto
temporary directories: the seed Job's, the init container that waits for it, and the `helm test`
hook against the multi-process stack (real RabbitMQ)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.stack import Stack
from tests.k8s.chart import REPO, containers, env_of, one, render
from tests.utils.stack import running_stack


def in_pod_paths(objects: list[dict]) -> tuple[str, str]:
    data = one(objects, "ConfigMap", "classifier")["data"]
    return data["CLASSIFIER_MODELS_DIR"], data["CLASSIFIER_GALLERY_DIR"]


def localise(command: list[str], mapping: dict[str, Path]) -> list[str]:
    """The pod's command with in-pod paths replaced by local ones, and `python` by this one."""
    out = []
    for arg in command:
        for pod_path, local in mapping.items():
            arg = arg.replace(pod_path, str(local))
        out.append(arg)
    if out[0] == "python":
        out[0] = sys.executable
    return out


def wait_for_seed_command(objects: list[dict], deployment: str) -> list[str]:
    spec = one(objects, "Deployment", deployment)["spec"]["template"]["spec"]
    (init,) = spec["initContainers"]
    assert init["name"] == "wait-for-seed"
    return init["command"]


def test_seed_job_fills_the_volumes_and_releases_the_waiting_pods(tmp_path: Path) -> None:
    objects = render("--set", "workerPools[0].name=default", "--set", "workerPools[0].models={efficientnet_lite0}")
    models_dir, gallery_dir = in_pod_paths(objects)
    local = {
        models_dir: tmp_path / "models",
        gallery_dir: tmp_path / "gallery",
        "/app/gallery": REPO / "gallery",  # where the worker image carries the gallery
    }
    for directory in (local[models_dir], local[gallery_dir]):
        directory.mkdir()
    wait = localise(wait_for_seed_command(objects, "classifier-worker-default"), local)
    assert wait_for_seed_command(objects, "classifier-gateway") == wait_for_seed_command(
        objects, "classifier-worker-default"
    )

    # Before the seed: the init container keeps waiting.
    with pytest.raises(subprocess.TimeoutExpired):
        subprocess.run(wait, capture_output=True, timeout=3)

    job = one(objects, "Job", "classifier-seed-1")
    (_, seed), *_ = containers(job)
    result = subprocess.run(localise(seed["command"], local), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (local[models_dir] / "efficientnet-lite0-57934424.pth").is_file()
    assert not (local[models_dir] / "efficientnet-lite1-77cc7160.pth").exists()  # only the pools' models
    assert len(list(local[gallery_dir].glob("*.JPEG"))) == 41

    # After it: the init container lets the pod start at once.
    done = subprocess.run(wait, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert "seeded" in done.stdout


def test_seed_job_downloads_only_when_values_say_the_cluster_has_internet() -> None:
    def seed_command(*args: str) -> list[str]:
        job = one(render(*args), "Job", "classifier-seed-1")
        return job["spec"]["template"]["spec"]["containers"][0]["command"]

    assert "--download" not in seed_command()
    assert "--download" in seed_command("--set", "seed.download=true")
    # Every pool's models (the default pool's: the EfficientNet-Lite ones), and only those.
    models = [arg for arg in seed_command() if arg.startswith("--models=")]
    assert models == ["--models=efficientnet_lite0,efficientnet_lite1,efficientnet_lite2"]


@pytest.fixture
def stack(tmp_path: Path, seeded: tuple[Path, Path]) -> Iterator[Stack]:
    with running_stack(tmp_path, seeded, workers=1, CLASSIFIER_MODELS="efficientnet_lite0") as stack:
        yield stack


def smoke_test(objects: list[dict], stack: Stack, **overrides: str) -> subprocess.CompletedProcess[str]:
    """The `helm test` pod's command and environment, pointed at the local services."""
    pod = one(objects, "Pod", "classifier-smoke-test")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    container = pod["spec"]["containers"][0]
    env = {name: entry["value"] for name, entry in env_of(container).items() if "value" in entry}
    assert env["GATEWAY_URL"] == "http://classifier-gateway:8000"
    assert env["RESULTS_URL"] == "http://classifier-results:8001"
    env.update(
        GATEWAY_URL=f"http://127.0.0.1:{stack.gateway_port}",
        RESULTS_URL=f"http://127.0.0.1:{stack.results_port}",
        **overrides,
    )
    command = [sys.executable, *container["command"][1:]]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.rabbitmq
@pytest.mark.slow
def test_helm_test_hook_passes_against_the_real_services_and_fails_when_it_should(stack: Stack) -> None:
    objects = render()
    passed = smoke_test(objects, stack)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "succeeded: tench" in passed.stdout

    wrong_label = smoke_test(objects, stack, EXPECTED_CLASS_INDEX="999")  # toilet tissue, not a tench
    assert wrong_label.returncode == 1
    assert "class 999 is not among the predictions" in wrong_label.stdout

    unknown_image = smoke_test(objects, stack, TEST_IMAGE="no-such-image.jpg")
    assert unknown_image.returncode == 1
    assert "POST /v1/jobs answered 422" in unknown_image.stdout and "unknown_image" in unknown_image.stdout
