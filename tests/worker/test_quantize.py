"""The int8 model of an export (classifier_worker.quantize): calibrated on every second gallery
photo, recorded by sha256 and refused when it does not match, taken from the seed's folder before
the worker's cache; its agreement with fp32 torch is checked where every runtime is
(test_selection.py, test_onnx_only.py)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnx.numpy_helper
import pytest

from classifier_common.catalog import get_spec
from classifier_worker import export, quantize
from classifier_worker.models import LoadedModel
from classifier_worker.runtimes import ONNXRUNTIME_INT8, OnnxRuntime
from classifier_worker.selection import MAX_DISAGREEMENTS, check_onnx, gallery_batches

SPEC = get_spec("efficientnet_lite0")


@pytest.fixture(scope="module")
def made(seeded: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[LoadedModel, Path, list]:
    """(lite0, its export, the gallery photos preprocessed)."""
    directory = tmp_path_factory.mktemp("quantize")
    shutil.copy(SPEC.weights_path(seeded[0]), SPEC.weights_path(directory))
    loaded = LoadedModel.load(SPEC, directory)
    path = export.export(loaded.module, SPEC, directory / export.EXPORTS_DIR / export.export_name(SPEC, loaded.version))
    return loaded, path, gallery_batches(loaded, seeded[1])


def test_calibration_takes_every_second_photo() -> None:
    photos = [np.full((1, 1), i, dtype=np.float32) for i in range(5)]
    assert [int(p[0, 0]) for p in quantize.calibration(photos)] == [0, 2, 4]


def test_the_int8_model_is_quantized_and_recorded(made: tuple[LoadedModel, Path, list], tmp_path: Path) -> None:
    _, source, batches = made
    path = quantize.quantize(source, tmp_path / "lite0-int8.onnx", batches)
    assert export.verify(path)  # its digest is recorded beside it
    graph = onnx.load(str(path)).graph
    operators = {node.op_type for node in graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= operators
    int8_weights = [t for t in graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert len(int8_weights) > 30  # every convolution's weights, per channel
    assert not list(tmp_path.glob("*.part"))
    logits = OnnxRuntime(path, 1, ONNXRUNTIME_INT8)(batches[1])
    assert logits.shape == (1, 1000) and logits.dtype == np.float32


def test_the_weights_use_seven_bits(made: tuple[LoadedModel, Path, list], tmp_path: Path) -> None:
    """reduce_range: no weight outside [-64, 64], so two uint8 x int8 products (2 x 255 x 64 =
    32,640) fit the 16-bit sums of CPUs without VNNI."""
    _, source, batches = made
    path = quantize.quantize(source, tmp_path / "lite0-int8.onnx", batches)
    weights = [
        onnx.numpy_helper.to_array(t)
        for t in onnx.load(str(path)).graph.initializer
        if t.data_type == onnx.TensorProto.INT8
    ]
    assert len(weights) > 30
    assert min(int(w.min()) for w in weights) >= -64 and max(int(w.max()) for w in weights) <= 64


def test_the_int8_model_agrees_with_fp32_torch_on_this_cpu(
    made: tuple[LoadedModel, Path, list], tmp_path: Path
) -> None:
    """On every CPU, with or without VNNI: on one without (AMD EPYC Zen 3), 8-bit weights
    disagreed on 4 of the 41 gallery photos."""
    loaded, source, batches = made
    path = quantize.quantize(source, tmp_path / "lite0-int8.onnx", batches)
    verdict = check_onnx(loaded, path, ONNXRUNTIME_INT8, batches, 1)
    assert verdict.refused is None and verdict.disagreeing <= MAX_DISAGREEMENTS, verdict


def test_without_calibration_photos_there_is_no_int8_model(
    made: tuple[LoadedModel, Path, list], tmp_path: Path
) -> None:
    _, source, _ = made
    with pytest.raises(ValueError, match="no calibration photos"):
        quantize.quantize(source, tmp_path / "lite0-int8.onnx", [])
    assert not list(tmp_path.iterdir())


def test_an_unverified_export_is_not_quantized(made: tuple[LoadedModel, Path, list], tmp_path: Path) -> None:
    _, source, batches = made
    copy = tmp_path / source.name
    shutil.copy(source, copy)  # without its digest
    with pytest.raises(export.ExportRefused):
        quantize.quantize(copy, tmp_path / "lite0-int8.onnx", batches)


def test_the_seeded_int8_model_comes_first_and_a_tampered_one_is_made_again(
    made: tuple[LoadedModel, Path, list], tmp_path: Path
) -> None:
    loaded, source, batches = made
    models_dir, cache = tmp_path / "models", tmp_path / "cache"
    seeded = models_dir / export.EXPORTS_DIR / quantize.int8_name(SPEC, loaded.version)
    quantize.quantize(source, seeded, batches)
    assert quantize.ensure_int8(source, SPEC, loaded.version, models_dir, cache, batches) == seeded
    assert not cache.exists()
    data = bytearray(seeded.read_bytes())
    data[len(data) // 2] ^= 0xFF
    seeded.write_bytes(bytes(data))
    remade = quantize.ensure_int8(source, SPEC, loaded.version, models_dir, cache, batches)
    assert remade == cache / seeded.name and export.verify(remade)
    assert quantize.ensure_int8(source, SPEC, loaded.version, models_dir, cache, []) == remade  # no new calibration


def test_the_quantizer_notes_stay_out_of_the_log(
    made: tuple[LoadedModel, Path, list], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _, source, batches = made
    with caplog.at_level(logging.DEBUG):
        quantize.quantize(source, tmp_path / "lite0-int8.onnx", batches[:4])
        logging.getLogger().info("after the quantization")  # the filter is gone
    assert [r.getMessage() for r in caplog.records] == ["model quantized to int8", "after the quantization"]
