"""The runtime check at start-up: agreement with fp32 torch on the gallery, the self-benchmark,
the choice, and what is logged and exported. A runtime is made to disagree deliberately with an
export of wrong weights whose digest is recorded: it passes the checksum, so only the agreement
check stands between it and the jobs."""

from __future__ import annotations

import copy
import logging
import shutil
from pathlib import Path

import pytest
import torch
from prometheus_client import REGISTRY

from classifier_common.catalog import get_spec
from classifier_common.config import Settings
from classifier_worker import cpu, export, quantize
from classifier_worker.models import LoadedModel
from classifier_worker.preprocess import decode
from classifier_worker.runtimes import (
    ONNXRUNTIME,
    ONNXRUNTIME_INT8,
    TORCH,
    TORCH_BF16,
    TORCH_CUDA,
    TorchCudaRuntime,
    TorchRuntime,
)
from classifier_worker.selection import (
    AUTO,
    MAX_DISAGREEMENTS,
    RuntimeUnavailable,
    Selection,
    Verdict,
    choose,
    gallery_batches,
)
from classifier_worker.selection import select_runtime as _select_runtime
from classifier_worker.worker import load_models, release_torch_modules
from tests.utils.corrupt_images import undecodable_gallery_files, unlisted_gallery_files

SPEC = get_spec("efficientnet_lite0")
MODEL = SPEC.name
ZEN3 = "model name\t: AMD EPYC 7B13 64-Core Processor\nflags\t\t: fpu sse sse2 avx avx2 fma sha_ni vaes\n"


@pytest.fixture(scope="module")
def models_dir(seeded: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Lite0's weights, their export and its int8 model, as the seed step leaves them."""
    directory = tmp_path_factory.mktemp("models")
    shutil.copy(SPEC.weights_path(seeded[0]), SPEC.weights_path(directory))
    loaded = LoadedModel.load(SPEC, directory)
    exports = directory / export.EXPORTS_DIR
    made = export.export(loaded.module, SPEC, exports / export.export_name(SPEC, loaded.version))
    quantize.quantize(made, exports / quantize.int8_name(SPEC, loaded.version), gallery_batches(loaded, seeded[1]))
    return directory


@pytest.fixture
def lite0(models_dir: Path) -> LoadedModel:
    return LoadedModel.load(SPEC, models_dir)


@pytest.fixture
def gallery_dir(seeded: tuple[Path, Path]) -> Path:
    return seeded[1]


@pytest.fixture
def wrong_models_dir(lite0: LoadedModel, tmp_path: Path) -> Path:
    """A models folder whose export has wrong classifier biases, its digest duly recorded."""
    wrong = copy.deepcopy(lite0.module)
    last = [m for m in wrong.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.bias.copy_(torch.randn(last.bias.shape, generator=torch.Generator().manual_seed(0)) * 100)
    models = tmp_path / "wrong"
    export.export(wrong, SPEC, models / export.EXPORTS_DIR / export.export_name(SPEC, lite0.version))
    return models


@pytest.fixture
def zen3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    """This process sees a CPU without AVX512-BF16 or AMX."""
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(ZEN3)
    monkeypatch.setattr(cpu, "CPUINFO", cpuinfo)
    cpu.this_cpu_has_bf16.cache_clear()
    yield
    cpu.this_cpu_has_bf16.cache_clear()


def select(loaded: LoadedModel, requested: str, models_dir: Path, gallery_dir: Path, tmp_path: Path) -> Selection:
    return _select_runtime(
        loaded, requested, models_dir=models_dir, gallery_dir=gallery_dir, cache_dir=tmp_path / "cache", threads=1
    )


def metric(name: str, runtime: str | None = None) -> float | None:
    labels = {"model": MODEL} if runtime is None else {"model": MODEL, "runtime": runtime}
    return REGISTRY.get_sample_value(name, labels)


def test_auto_takes_the_fastest_runtime_that_agrees(
    lite0: LoadedModel, models_dir: Path, gallery_dir: Path, tmp_path: Path
) -> None:
    selection = select(lite0, AUTO, models_dir, gallery_dir, tmp_path)
    checked = selection.verdicts
    assert {TORCH, ONNXRUNTIME, ONNXRUNTIME_INT8} <= set(checked)
    for verdict in checked.values():
        if verdict.refused is None:
            assert verdict.photos == 41 and verdict.disagreeing <= MAX_DISAGREEMENTS, verdict
    usable = {name: v.ms_per_image for name, v in checked.items() if v.refused is None}
    assert selection.chosen == min(usable, key=lambda name: usable[name] or 0.0)
    assert lite0.runtime.name == selection.chosen
    assert not (tmp_path / "cache").exists()  # the seeded export was used
    # ... and exported as metrics
    assert metric("classifier_runtime_selected", selection.chosen) == 1
    for name, verdict in checked.items():
        # A runtime this CPU cannot run (bf16 without AVX512-BF16 or AMX) was not measured: no sample.
        disagreements = verdict.disagreeing if verdict.photos else None
        assert metric("classifier_runtime_gallery_disagreements", name) == disagreements, verdict
        if verdict.ms_per_image is not None:
            assert metric("classifier_runtime_forward_seconds", name) == pytest.approx(verdict.ms_per_image / 1000)
        if name != selection.chosen:
            assert metric("classifier_runtime_selected", name) == 0
    assert metric("classifier_runtime_check_seconds") == pytest.approx(selection.check_s)


def test_auto_refuses_a_runtime_that_disagrees(
    lite0: LoadedModel, wrong_models_dir: Path, gallery_dir: Path, tmp_path: Path
) -> None:
    selection = select(lite0, AUTO, wrong_models_dir, gallery_dir, tmp_path)
    verdict = selection.verdicts[ONNXRUNTIME]
    assert verdict.disagreeing > MAX_DISAGREEMENTS
    assert verdict.refused and "disagrees with fp32 torch" in verdict.refused
    assert selection.chosen != ONNXRUNTIME and lite0.runtime.name == selection.chosen
    assert metric("classifier_runtime_selected", ONNXRUNTIME) == 0
    assert metric("classifier_runtime_gallery_disagreements", ONNXRUNTIME) == verdict.disagreeing
    # The int8 model the worker made of that export (none was seeded) is refused as well.
    int8 = selection.verdicts[ONNXRUNTIME_INT8]
    assert int8.refused and "disagrees with fp32 torch" in int8.refused, int8
    assert (tmp_path / "cache" / quantize.int8_name(SPEC, lite0.version)).is_file()


def test_a_named_runtime_that_disagrees_keeps_the_worker_from_starting(
    lite0: LoadedModel, wrong_models_dir: Path, gallery_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(RuntimeUnavailable, match="disagrees with fp32 torch"):
        select(lite0, ONNXRUNTIME, wrong_models_dir, gallery_dir, tmp_path)
    assert isinstance(lite0.runtime, TorchRuntime)


def test_choose_never_takes_a_refused_runtime_however_fast() -> None:
    verdicts = {
        TORCH: Verdict(TORCH, 41, 41, 14.0),
        TORCH_BF16: Verdict(TORCH_BF16, 41, 39, 5.0, refused="disagrees"),
        ONNXRUNTIME: Verdict(ONNXRUNTIME, 41, 40, 9.0),
    }
    assert choose(AUTO, verdicts) == ONNXRUNTIME
    verdicts[ONNXRUNTIME].refused = "failed"
    assert choose(AUTO, verdicts) == TORCH
    assert choose(TORCH, verdicts) == TORCH
    with pytest.raises(RuntimeUnavailable):
        choose(TORCH_BF16, verdicts)


@pytest.mark.usefixtures("zen3")
def test_bf16_is_never_used_on_a_cpu_without_it(
    lite0: LoadedModel, models_dir: Path, gallery_dir: Path, tmp_path: Path
) -> None:
    selection = select(lite0, AUTO, models_dir, gallery_dir, tmp_path)
    bf16 = selection.verdicts[TORCH_BF16]
    assert bf16.refused and "neither AVX512-BF16 nor AMX" in bf16.refused
    assert bf16.photos == 0 and selection.chosen != TORCH_BF16
    with pytest.raises(RuntimeUnavailable, match="AVX512-BF16"):
        select(lite0, TORCH_BF16, models_dir, gallery_dir, tmp_path)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_the_gpu_runtime_is_never_used_without_a_gpu(
    lite0: LoadedModel, models_dir: Path, gallery_dir: Path, tmp_path: Path
) -> None:
    selection = select(lite0, AUTO, models_dir, gallery_dir, tmp_path)
    cuda = selection.verdicts[TORCH_CUDA]
    assert cuda.refused and "no CUDA device" in cuda.refused, cuda
    assert cuda.photos == 0 and selection.chosen != TORCH_CUDA
    with pytest.raises(RuntimeUnavailable, match="no CUDA device"):
        select(lite0, TORCH_CUDA, models_dir, gallery_dir, tmp_path)
    assert lite0.runtime.name == selection.chosen  # the failed request changed nothing


def test_the_gpu_runtime_runs_a_copy_of_the_module_and_answers_as_torch_does(
    lite0: LoadedModel, gallery_dir: Path
) -> None:
    """The GPU runtime's own code on this machine's device (the GPU where there is one): the
    module copied to the device, the batch sent there, the logits brought back as numpy. The
    reference module stays on the CPU, so the worker can free it and go on classifying."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    batches = gallery_batches(lite0, gallery_dir)
    reference = TorchRuntime(lite0.module)
    runtime = TorchCudaRuntime(lite0.module, device=device)
    assert runtime.module is not lite0.module
    assert next(runtime.module.parameters()).device.type == device
    assert next(lite0.module.parameters()).device.type == "cpu"
    expected = [reference(batch) for batch in batches]
    lite0.runtime = runtime
    lite0.release_module()
    got = [runtime(batch) for batch in batches]
    assert all(g.dtype == e.dtype and g.shape == e.shape for g, e in zip(got, expected, strict=True))
    if device == "cpu":  # the same kernels on the same device: the same numbers
        assert all((g == e).all() for g, e in zip(got, expected, strict=True))
    agreeing = sum(int(g.argmax()) == int(e.argmax()) for g, e in zip(got, expected, strict=True))
    assert agreeing >= len(batches) - MAX_DISAGREEMENTS


def test_torch_is_used_without_a_check(lite0: LoadedModel, tmp_path: Path) -> None:
    selection = select(lite0, TORCH, tmp_path / "nothing", tmp_path / "nothing", tmp_path)
    assert selection.chosen == TORCH and set(selection.verdicts) == {TORCH}
    assert selection.verdicts[TORCH].photos == 0


def test_without_gallery_photos_auto_stays_with_torch(lite0: LoadedModel, models_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    selection = select(lite0, AUTO, models_dir, tmp_path / "empty", tmp_path)
    assert selection.chosen == TORCH
    assert "no gallery photos" in (selection.verdicts[ONNXRUNTIME].refused or "")
    with pytest.raises(RuntimeUnavailable, match="no gallery photos"):
        select(lite0, ONNXRUNTIME, models_dir, tmp_path / "empty", tmp_path)


def test_bad_gallery_files_are_left_out_of_the_check(
    lite0: LoadedModel, models_dir: Path, gallery_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Files the gallery leaves out, and files it lists that fail to decode, are skipped with a
    warning each; the check runs on the good photos and the worker starts."""
    mixed = tmp_path / "gallery"
    mixed.mkdir()
    photos = ["n01440764_tench.JPEG", "n01531178_goldfinch.JPEG"]
    for name in photos:
        shutil.copy(gallery_dir / name, mixed / name)
    undecodable = undecodable_gallery_files()
    for name, data in {**unlisted_gallery_files(), **undecodable}.items():
        (mixed / name).write_bytes(data)
    caplog.set_level(logging.WARNING)
    assert len(gallery_batches(lite0, mixed)) == len(photos)
    skipped = [r.getMessage() for r in caplog.records if r.name == "classifier_worker.selection"]
    assert len(skipped) == len(undecodable), skipped
    for name in undecodable:
        assert any(m.startswith(f"gallery photo {name} left out of the runtime check of {MODEL}: ") for m in skipped)
    selection = select(lite0, ONNXRUNTIME, models_dir, mixed, tmp_path)
    assert selection.chosen == ONNXRUNTIME and selection.verdicts[ONNXRUNTIME].photos == len(photos)


def test_unknown_runtime_is_refused(lite0: LoadedModel, tmp_path: Path) -> None:
    with pytest.raises(RuntimeUnavailable, match="unknown runtime"):
        select(lite0, "tensorrt", tmp_path, tmp_path, tmp_path)


def test_the_worker_loads_models_with_the_runtime_setting(models_dir: Path, gallery_dir: Path, tmp_path: Path) -> None:
    settings = Settings(
        models_dir=models_dir,
        gallery_dir=gallery_dir,
        models=[MODEL],
        runtime=ONNXRUNTIME,
        runtime_cache_dir=tmp_path / "cache",
    )
    model = load_models(settings)[MODEL]
    assert model.runtime.name == ONNXRUNTIME and model.ready
    image = decode((gallery_dir / "n01531178_goldfinch.JPEG").read_bytes(), SPEC)
    (top5,) = model.predict([image])
    assert top5[0].label == "goldfinch"
    assert metric("classifier_runtime_selected", ONNXRUNTIME) == 1
    # ONNX Runtime runs the only loaded model: its torch module (the weights) is freed.
    assert model.module_released and not isinstance(model.module, torch.nn.Module)
    with pytest.raises(RuntimeError, match="released"):
        model.module(torch.zeros(1, 3, SPEC.input_size, SPEC.input_size))


def test_torch_modules_stay_while_torch_runs_a_model(
    lite0: LoadedModel, models_dir: Path, gallery_dir: Path, tmp_path: Path
) -> None:
    onnx = LoadedModel.load(SPEC, models_dir)
    select(onnx, ONNXRUNTIME, models_dir, gallery_dir, tmp_path)
    select(lite0, TORCH, models_dir, gallery_dir, tmp_path)
    # One model on fp32 torch: torch stays in use, nothing is released.
    assert release_torch_modules({"a": onnx, "b": lite0}) is False
    assert not onnx.module_released and not lite0.module_released
    with pytest.raises(RuntimeError, match="runs on its torch module"):
        lite0.release_module()
    assert release_torch_modules({"a": onnx}) is True
    assert onnx.module_released and not lite0.module_released
    image = decode((gallery_dir / "n01531178_goldfinch.JPEG").read_bytes(), SPEC)
    assert onnx.predict([image])[0][0].label == "goldfinch"  # the runtime still answers


def _rss_mb() -> float:
    status = Path("/proc/self/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1]) / 1024


def test_releasing_the_modules_lowers_the_resident_memory(models_dir: Path, gallery_dir: Path, tmp_path: Path) -> None:
    models = {name: LoadedModel.load(SPEC, models_dir) for name in ("a", "b", "c")}
    for model in models.values():
        select(model, ONNXRUNTIME, models_dir, gallery_dir, tmp_path)
    weights_mb = sum(p.numel() * p.element_size() for p in models["a"].module.parameters()) / 2**20
    before = _rss_mb()
    assert release_torch_modules(models) is True
    after = _rss_mb()
    # Three copies of lite0's ~18 MiB of weights went; what the allocator returns besides may add to it.
    assert before - after >= 2 * weights_mb, (before, after, weights_mb)
