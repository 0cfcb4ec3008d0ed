"""A worker without torch (the ONNX-only worker image): every model from the ONNX export the seed
step made of it or its int8 model (``auto``: the faster), each served only with the seed's
passing check against fp32 torch recorded beside it and bound to that file; a torch runtime, a
missing or tampered file, and a missing, foreign or failed record each refuse it with what to do.

The loading code runs here in-process; the worker process runs with torch made unimportable
(``sys.modules["torch"] = None``: any ``import torch`` fails), as in the image without it
(tests/packaging/test_service_installs.py installs the worker without torch for real)."""

from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from prometheus_client import REGISTRY

from classifier_common.catalog import get_spec
from classifier_common.config import Settings
from classifier_worker import allocator, export, onnx_only, quantize, worker
from classifier_worker.models import LoadedModel, weights_version
from classifier_worker.preprocess import decode
from classifier_worker.runtimes import ONNX_RUNTIMES, ONNXRUNTIME, ONNXRUNTIME_INT8, TORCH_RUNTIMES, RuntimeUnavailable
from classifier_worker.seed import seed_exports
from classifier_worker.selection import AUTO, MAX_DISAGREEMENTS
from devstack.isolated import AMQP_URL
from devstack.ports import free_port
from devstack.stack import delete_job_queues, http_status

SPEC = get_spec("efficientnet_lite0")
GOLDFINCH = "n01531178_goldfinch.JPEG"


@pytest.fixture
def models_dir(seeded_lite0_export: Path, tmp_path: Path) -> Path:
    """A copy of the seeded models folder, for the tests that damage it."""
    return Path(shutil.copytree(seeded_lite0_export, tmp_path / "models"))


def export_of(models_dir: Path) -> Path:
    return models_dir / export.EXPORTS_DIR / export.export_name(SPEC, weights_version(SPEC, models_dir))


def int8_of(models_dir: Path) -> Path:
    return models_dir / export.EXPORTS_DIR / quantize.int8_name(SPEC, weights_version(SPEC, models_dir))


def edit_record(models_dir: Path, **changes: object) -> None:
    path = export.agreement_path(export_of(models_dir))
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def test_the_seed_records_the_check_of_the_export_it_made(seeded_lite0_export: Path) -> None:
    path = export_of(seeded_lite0_export)
    record = export.read_agreement(path, export.verify(path))
    assert record.photos == 41 and record.refused is None, record
    assert record.disagreeing <= MAX_DISAGREEMENTS
    assert record.max_disagreements == MAX_DISAGREEMENTS
    assert record.torch == torch.__version__


def test_the_seed_records_the_check_of_the_int8_model_it_made(seeded_lite0_export: Path) -> None:
    path = int8_of(seeded_lite0_export)
    record = export.read_agreement(path, export.verify(path))
    assert record.photos == 41 and record.refused is None, record
    assert record.disagreeing <= MAX_DISAGREEMENTS
    assert path.stat().st_size < export_of(seeded_lite0_export).stat().st_size / 2  # int8 weights


def timed(runtime: str) -> float | None:
    return REGISTRY.get_sample_value("classifier_runtime_forward_seconds", {"model": SPEC.name, "runtime": runtime})


def test_auto_takes_the_faster_seeded_file(seeded_lite0_export: Path, seeded: tuple[Path, Path]) -> None:
    model = onnx_only.load(SPEC, seeded_lite0_export, threads=1, requested=AUTO)
    seconds = {name: timed(name) for name in ONNX_RUNTIMES}
    assert all(seconds.values()), seconds  # both timed, here
    assert model.runtime.name == min(ONNX_RUNTIMES, key=lambda name: seconds[name] or 0.0)
    labels = {"model": SPEC.name, "runtime": model.runtime.name}
    assert REGISTRY.get_sample_value("classifier_runtime_selected", labels) == 1
    (top5,) = model.predict([decode((seeded[1] / GOLDFINCH).read_bytes(), SPEC)])
    assert top5[0].label == "goldfinch"


def test_the_worker_without_torch_gives_back_the_sessions_auto_left(
    seeded_lite0_export: Path, seeded: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """auto loads both files to time them; the one not chosen is freed, and its memory must go
    back to the OS despite the worker's malloc setting (measured: three models, 204 -> 123 MiB)."""
    events: list[str] = []
    monkeypatch.setattr(worker, "torch_installed", lambda: False)
    monkeypatch.setattr(allocator, "return_freed_memory", lambda: events.append("returned"))
    loading = onnx_only.load

    def load(*args: object) -> LoadedModel:
        events.append("loaded")
        return loading(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(onnx_only, "load", load)
    settings = Settings(models_dir=seeded_lite0_export, gallery_dir=seeded[1], models=[SPEC.name], runtime=AUTO)
    assert worker.load_models(settings)[SPEC.name].runtime.name in ONNX_RUNTIMES
    assert events == ["loaded", "returned"]


@pytest.mark.parametrize(("damaged", "served"), [(ONNXRUNTIME, ONNXRUNTIME_INT8), (ONNXRUNTIME_INT8, ONNXRUNTIME)])
def test_auto_serves_the_file_that_qualifies(models_dir: Path, damaged: str, served: str) -> None:
    path = int8_of(models_dir) if damaged == ONNXRUNTIME_INT8 else export_of(models_dir)
    export.agreement_path(path).unlink()
    model = onnx_only.load(SPEC, models_dir, threads=1, requested=AUTO)
    assert model.runtime.name == served


def test_a_named_int8_runtime_needs_its_seeded_file(models_dir: Path) -> None:
    assert onnx_only.load(SPEC, models_dir, threads=1, requested=ONNXRUNTIME_INT8).runtime.name == ONNXRUNTIME_INT8
    int8_of(models_dir).unlink()
    with pytest.raises(RuntimeUnavailable, match="no verified int8 model with a recorded check") as refused:
        onnx_only.load(SPEC, models_dir, threads=1, requested=ONNXRUNTIME_INT8)
    assert "run the seed with torch installed" in str(refused.value)


def test_a_model_runs_from_its_seeded_export(seeded_lite0_export: Path, seeded: tuple[Path, Path]) -> None:
    model = onnx_only.load(SPEC, seeded_lite0_export, threads=1)
    assert model.ready and model.runtime.name == ONNXRUNTIME and model.module_released
    assert model.version == LoadedModel.load(SPEC, seeded_lite0_export).version
    (top5,) = model.predict([decode((seeded[1] / GOLDFINCH).read_bytes(), SPEC)])
    assert top5[0].label == "goldfinch"
    # The recorded check is reported as a worker with torch reports its own.
    labels = {"model": SPEC.name, "runtime": ONNXRUNTIME}
    assert REGISTRY.get_sample_value("classifier_runtime_selected", labels) == 1
    assert REGISTRY.get_sample_value("classifier_runtime_gallery_disagreements", labels) == 0


@pytest.mark.parametrize("runtime", TORCH_RUNTIMES)
def test_a_torch_runtime_is_refused(runtime: str) -> None:
    with pytest.raises(RuntimeUnavailable, match=f"CLASSIFIER_RUNTIME={runtime} needs torch") as refused:
        onnx_only.check_runtime(runtime)
    assert f"set CLASSIFIER_RUNTIME={AUTO}, {ONNXRUNTIME} or {ONNXRUNTIME_INT8}" in str(refused.value)


def test_auto_and_the_onnx_runtimes_run_without_torch() -> None:
    onnx_only.check_runtime(AUTO)
    onnx_only.check_runtime(ONNXRUNTIME)
    onnx_only.check_runtime(ONNXRUNTIME_INT8)
    with pytest.raises(RuntimeUnavailable, match="unknown runtime"):
        onnx_only.check_runtime("tensorrt")


def _no_export(models_dir: Path) -> None:
    shutil.rmtree(models_dir / export.EXPORTS_DIR)


def _no_record(models_dir: Path) -> None:
    export.agreement_path(export_of(models_dir)).unlink()


def _no_records(models_dir: Path) -> None:
    export.agreement_path(export_of(models_dir)).unlink()
    export.agreement_path(int8_of(models_dir)).unlink()


def _tampered_export(models_dir: Path) -> None:
    path = export_of(models_dir)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _record_of_another_file(models_dir: Path) -> None:
    edit_record(models_dir, export_sha256="0" * 64)


def _unreadable_record(models_dir: Path) -> None:
    export.agreement_path(export_of(models_dir)).write_text("{not json")


@pytest.mark.parametrize(
    "damage", [_no_export, _no_record, _tampered_export, _record_of_another_file, _unreadable_record]
)
def test_without_a_verified_export_and_its_record_the_worker_names_the_seed(
    models_dir: Path, damage: Callable[[Path], None]
) -> None:
    damage(models_dir)
    with pytest.raises(RuntimeUnavailable, match="run the seed with torch installed") as refused:
        onnx_only.load(SPEC, models_dir, threads=1)
    assert "python -m classifier_worker.seed" in str(refused.value)


def test_an_export_whose_check_failed_is_refused(models_dir: Path) -> None:
    edit_record(models_dir, agreeing=30, refused="disagrees with fp32 torch on 11 of 41 gallery photos")
    with pytest.raises(RuntimeUnavailable, match="did not pass .disagrees with fp32 torch on 11 of 41"):
        onnx_only.load(SPEC, models_dir, threads=1)


def test_a_check_passed_under_a_looser_rule_is_refused(models_dir: Path) -> None:
    edit_record(models_dir, agreeing=41 - MAX_DISAGREEMENTS - 1, max_disagreements=MAX_DISAGREEMENTS + 1)
    with pytest.raises(RuntimeUnavailable, match=f"at most {MAX_DISAGREEMENTS} allowed"):
        onnx_only.load(SPEC, models_dir, threads=1)


@pytest.mark.slow
def test_the_seed_records_a_failing_check_and_the_worker_refuses_that_export(
    seeded: tuple[Path, Path], tmp_path: Path
) -> None:
    """An export of wrong weights with its digest duly recorded: the seed takes it as present,
    checks it against torch, and records the refusal."""
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    shutil.copy(SPEC.weights_path(seeded[0]), SPEC.weights_path(models_dir))
    loaded = LoadedModel.load(SPEC, models_dir)
    wrong = copy.deepcopy(loaded.module)
    last = [m for m in wrong.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.bias.copy_(torch.randn(last.bias.shape, generator=torch.Generator().manual_seed(0)) * 100)
    export.export(wrong, SPEC, export_of(models_dir))
    gallery = tmp_path / "gallery"  # a few photos are enough to tell
    gallery.mkdir()
    for photo in sorted(seeded[1].glob("*.JPEG"))[:5]:
        shutil.copy(photo, gallery / photo.name)
    assert seed_exports(models_dir, [SPEC.name], gallery) == {SPEC.name: "present"}
    path = export_of(models_dir)
    record = export.read_agreement(path, export.verify(path))
    assert record.photos == 5 and record.refused and "disagrees with fp32 torch" in record.refused
    with pytest.raises(RuntimeUnavailable, match="did not pass"):
        onnx_only.load(SPEC, models_dir, threads=1)


# -- the worker process with torch unimportable ------------------------------------------------

WITHOUT_TORCH = (
    "import runpy, sys; sys.modules['torch'] = None; runpy.run_module('classifier_worker', run_name='__main__')"
)


def worker_env(models_dir: Path, gallery_dir: Path, tmp_path: Path, runtime: str, port: int, queue: str) -> dict:
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "CLASSIFIER_HOST": "127.0.0.1",
        "CLASSIFIER_PORT": str(port),
        "CLASSIFIER_BROKER_URL": AMQP_URL,
        "CLASSIFIER_QUEUE_NAME": queue,
        "CLASSIFIER_STORE_URL": f"sqlite:///{tmp_path}/jobs.db",
        "CLASSIFIER_MODELS_DIR": str(models_dir),
        "CLASSIFIER_GALLERY_DIR": str(gallery_dir),
        "CLASSIFIER_MODELS": SPEC.name,
        "CLASSIFIER_RUNTIME": runtime,
        "CLASSIFIER_LOG_FORMAT": "text",
    }


@pytest.mark.parametrize(
    ("runtime", "damage", "message"),
    [
        ("torch", None, "CLASSIFIER_RUNTIME=torch needs torch, which is not installed"),
        ("torch-bf16", None, "CLASSIFIER_RUNTIME=torch-bf16 needs torch"),
        ("torch-cuda", None, "CLASSIFIER_RUNTIME=torch-cuda needs torch"),
        ("onnxruntime", _no_export, "run the seed with torch installed, python -m classifier_worker.seed"),
        ("auto", _no_records, "the export's check against torch was never recorded"),
        ("onnxruntime-int8", _no_records, "no verified int8 model with a recorded check"),
    ],
)
def test_the_worker_without_torch_refuses_to_start_and_says_why(
    runtime: str,
    damage: Callable[[Path], None] | None,
    message: str,
    models_dir: Path,
    seeded: tuple[Path, Path],
    tmp_path: Path,
) -> None:
    if damage:
        damage(models_dir)
    env = worker_env(models_dir, seeded[1], tmp_path, runtime, free_port(), f"test.{uuid.uuid4().hex[:8]}.jobs")
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_TORCH], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    log = result.stdout + result.stderr
    assert result.returncode == 2, log[-3000:]
    assert "the worker cannot start" in log and message in log, log[-3000:]
    assert "Traceback" not in log


@pytest.mark.rabbitmq
def test_the_worker_without_torch_serves_from_the_seeded_export(
    seeded_lite0_export: Path, seeded: tuple[Path, Path], tmp_path: Path
) -> None:
    port, queue = free_port(), f"test.{uuid.uuid4().hex[:8]}.jobs"
    env = worker_env(seeded_lite0_export, seeded[1], tmp_path, AUTO, port, queue)
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", WITHOUT_TORCH], env=env, cwd=tmp_path, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 120
        while http_status(f"http://127.0.0.1:{port}/readyz") != 200:
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        delete_job_queues(AMQP_URL, queue)
    text = log.read_text()
    assert "torch is not installed: every model runs on ONNX Runtime" in text
    assert "runtime chosen" in text
