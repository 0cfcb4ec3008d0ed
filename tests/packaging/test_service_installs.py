"""Each service installed as its image installs it: the shared package and that service only,
into a fresh venv, without dev or test extras, at the versions of requirements/constraints.txt;
then its app is started and must answer /readyz. A module that imports something its package
does not declare fails here, before any image is built.

The worker's venv gets torch's CPU build (from a local wheel where pip's find-links has one,
else from PyTorch's CPU index) before the worker with its torch extra, whose requirement
(torch>=2.6,<3) it meets. The worker is also installed without that extra, as the ONNX-only
image installs it: torch is not there, and the worker serves a seeded export on ONNX Runtime."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from devstack.isolated import AMQP_URL
from devstack.paths import REPO
from devstack.ports import free_port
from devstack.stack import delete_job_queues, http_status

CONSTRAINTS = REPO / "requirements" / "constraints.txt"
SERVICES = {
    "gateway": ("services/gateway", "classifier_gateway"),
    "results": ("services/results", "classifier_results"),
    "classifier-worker": ("services/classifier-worker", "classifier_worker"),
}

pytestmark = [pytest.mark.slow, pytest.mark.rabbitmq, pytest.mark.timeout(900)]


def pip_find_links() -> list[Path]:
    configured = subprocess.run(
        [sys.executable, "-m", "pip", "config", "get", "global.find-links"], capture_output=True, text=True
    ).stdout
    links = os.environ.get("PIP_FIND_LINKS", "") + " " + configured
    return [Path(p) for p in links.split() if Path(p).is_dir()]


def cpu_torch() -> list[str]:
    """pip arguments that install torch's CPU build."""
    wheels = sorted(w for d in pip_find_links() for w in d.glob("torch-*+cpu-cp311-*.whl"))
    if wheels:
        return [str(wheels[-1])]
    return [
        "--index-url",
        "https://download.pytorch.org/whl/cpu",
        "--extra-index-url",
        "https://pypi.org/simple",
        "torch",
    ]


def install(venv: Path, service: str, *, with_torch: bool = True) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile"]
    constraints = venv / "constraints.txt"
    lines = CONSTRAINTS.read_text().splitlines()
    # torch's pin is for the build `make setup` chose; the CPU build here may be another version.
    constraints.write_text(
        "\n".join(line for line in lines if not line.startswith(("torch==", "torchvision=="))) + "\n"
    )
    project = str(REPO / SERVICES[service][0])
    if service == "classifier-worker" and with_torch:
        subprocess.run([*pip, "-c", str(constraints), *cpu_torch()], check=True)
        project += "[torch]"
    subprocess.run([*pip, "-c", str(constraints), str(REPO / "libs" / "common"), project], check=True)
    return python


def start_and_stop(python: Path, module: str, tmp: Path, seeded: tuple[Path, Path], **extra_env: str) -> str:
    """The app starts from the fresh venv (outside the repository, so nothing of it is imported
    from the checkout), answers /readyz, and stops on SIGTERM: the worker exits 0 after its
    drain; uvicorn ends by re-raising the SIGTERM it handled (exit -15, 143 in a container)."""
    port = free_port()
    queue = f"test.{uuid.uuid4().hex[:8]}.jobs"
    models_dir, gallery_dir = seeded
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp),
        "CLASSIFIER_HOST": "127.0.0.1",
        "CLASSIFIER_PORT": str(port),
        "CLASSIFIER_BROKER_URL": AMQP_URL,
        "CLASSIFIER_QUEUE_NAME": queue,
        "CLASSIFIER_STORE_URL": f"sqlite:///{tmp}/jobs.db",
        "CLASSIFIER_MODELS_DIR": str(models_dir),
        "CLASSIFIER_GALLERY_DIR": str(gallery_dir),
        "CLASSIFIER_MODELS": "efficientnet_lite0",
        **extra_env,
    }
    log = tmp / f"{module}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(python), "-m", module], env=env, cwd=tmp, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while http_status(f"http://127.0.0.1:{port}/readyz") != 200:
            assert proc.poll() is None, f"{module} exited with {proc.returncode}:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"{module} not ready:\n{log.read_text()[-3000:]}"
            time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        expected = (0,) if module == "classifier_worker" else (0, -signal.SIGTERM)
        assert proc.wait(60) in expected, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        delete_job_queues(AMQP_URL, queue)
    return log.read_text()


@pytest.mark.parametrize("service", SERVICES)
def test_service_starts_from_a_venv_with_only_its_declared_dependencies(
    service: str, tmp_path: Path, seeded: tuple[Path, Path]
) -> None:
    python = install(tmp_path / "venv", service)
    start_and_stop(python, SERVICES[service][1], tmp_path, seeded)


CLASSIFY_GOLDFINCH = """
import sys
from pathlib import Path
from classifier_common.config import Settings
from classifier_worker.preprocess import decode
from classifier_worker.worker import load_models
models_dir, gallery_dir = Path(sys.argv[1]), Path(sys.argv[2])
settings = Settings(models_dir=models_dir, gallery_dir=gallery_dir, models=["efficientnet_lite0"], runtime="auto")
model = load_models(settings)["efficientnet_lite0"]
image = decode((gallery_dir / "n01531178_goldfinch.JPEG").read_bytes(), model.spec)
print(model.runtime.name, model.predict([image])[0][0].label, "torch" in sys.modules)
"""


def test_the_worker_without_torch_serves_the_seeded_export(
    tmp_path: Path, seeded: tuple[Path, Path], seeded_lite0_export: Path
) -> None:
    python = install(tmp_path / "venv", "classifier-worker", with_torch=False)
    assert subprocess.run([str(python), "-c", "import torch"], capture_output=True).returncode != 0
    classified = subprocess.run(
        [str(python), "-c", CLASSIFY_GOLDFINCH, str(seeded_lite0_export), str(seeded[1])],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert classified.returncode == 0, classified.stderr[-3000:]
    runtime, label, torch_imported = classified.stdout.split()
    assert (label, torch_imported) == ("goldfinch", "False")
    assert runtime in ("onnxruntime", "onnxruntime-int8")  # auto: the faster seeded file
    # The int8 model runs where neither torch nor the onnx package is installed.
    assert subprocess.run([str(python), "-c", "import onnx"], capture_output=True).returncode != 0
    log = start_and_stop(
        python, "classifier_worker", tmp_path, (seeded_lite0_export, seeded[1]), CLASSIFIER_RUNTIME="onnxruntime-int8"
    )
    assert "torch is not installed: every model runs on ONNX Runtime" in log
    assert "-int8-r7.onnx" in log  # the model loaded from the int8 file
