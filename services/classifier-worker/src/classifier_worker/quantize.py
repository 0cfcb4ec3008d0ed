"""The int8 model of the ``onnxruntime-int8`` runtime: the verified ONNX export of a model
(:mod:`classifier_worker.export`) quantized statically by ONNX Runtime's own tools.

- Weights are int8 per output channel, activations uint8 per tensor, as QuantizeLinear /
  DequantizeLinear pairs around each operator (the QDQ format), which ONNX Runtime's CPU provider
  fuses into int8 kernels (VNNI or AMX where the CPU has them).
- The weights use 7 of the 8 bits (``reduce_range``). On a CPU with AVX2 or AVX-512 but no VNNI,
  ONNX Runtime multiplies uint8 by int8 with an instruction whose 16-bit sums of two products
  saturate; with 8-bit weights efficientnet_lite0's int8 model then disagreed with fp32 torch
  on 4 of the 41 gallery photos on such a CPU (AMD EPYC Zen 3) and was refused, with 7-bit
  weights on none, at the same speed (docs/performance.md). VNNI and AMX do not saturate, so the
  same file gives the same answers on every CPU, and the check the seed step records for the
  ONNX-only image holds wherever that image runs.
- Activation ranges are the minimum and maximum seen on calibration photos: every second gallery
  photo in name order (:func:`calibration`), preprocessed as the worker preprocesses a job's
  photo. The check against fp32 torch then runs on every gallery photo, so half of them were
  never seen by the calibration.
- The graph is optimized before it is quantized (ONNX Runtime's ``quant_pre_process``): without
  that step the int8 model of efficientnet_lite0 ran 1.2 times as fast as the export, with it
  1.8 times (docs/performance.md).

The file is named after the export it was made from and the recipe (``<model>-<version>-int8-r7.onnx``:
a model an earlier recipe made is not taken, but made again), recorded by
sha256 beside it and refused when it does not match, like the export; the seed step makes it
into ``<models dir>/exports`` and records its check, a worker with torch makes any missing or
refused one in its cache directory. Only :func:`quantize` needs the ``onnx`` package.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from classifier_common.catalog import ModelSpec
from classifier_worker import export

log = logging.getLogger(__name__)

# ONNX Runtime's logger: warnings (2) by default; 3 keeps its notes on each initializer the graph
# optimization drops out of the worker's log.
_ORT_WARNING = 2
_ORT_ERROR = 3


# What the file name says of how the model was quantized: weights in 7 bits (reduce_range).
RECIPE = "r7"


def int8_name(spec: ModelSpec, version: str) -> str:
    return f"{spec.name}-{version}-int8-{RECIPE}.onnx"


def calibration(batches: list[np.ndarray]) -> list[np.ndarray]:
    """The photos whose activations set the int8 ranges: every second one, from the first."""
    return batches[::2]


class _QuietQuantizer(logging.Filter):
    """Drops ONNX Runtime's quantization notes below a warning (one line per weight whose scale
    it widened, hundreds per model): it logs them on the root logger."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or "onnxruntime" not in record.pathname


class _Photos:
    """ONNX Runtime's CalibrationDataReader over preprocessed photos."""

    def __init__(self, batches: list[np.ndarray]):
        self._batches: Iterator[np.ndarray] = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {export.INPUT_NAME: batch}


def quantize(source: Path, path: Path, batches: list[np.ndarray]) -> Path:
    """Quantize the verified export at ``source`` to ``path``, calibrated on
    :func:`calibration` of ``batches`` (the gallery photos, preprocessed), and record its digest."""
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    photos = calibration(batches)
    if not photos:
        raise ValueError("no calibration photos: the int8 model is calibrated on gallery photos")
    started = time.perf_counter()
    export.verify(source)
    part = export.part_path(path)
    quiet = _QuietQuantizer()
    logging.getLogger().addFilter(quiet)
    ort.set_default_logger_severity(_ORT_ERROR)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            optimized = Path(tmp) / "optimized.onnx"
            # The export's shapes are static but for the batch: ONNX's own shape inference is
            # enough (the symbolic one would need sympy).
            quant_pre_process(str(source), str(optimized), skip_symbolic_shape=True)
            quantize_static(
                str(optimized),
                str(part),
                _Photos(photos),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                reduce_range=True,  # 7-bit weights: no saturation on CPUs without VNNI
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
            )
    finally:
        ort.set_default_logger_severity(_ORT_WARNING)
        logging.getLogger().removeFilter(quiet)
    export.publish(part, path)
    log.info(
        "model quantized to int8",
        extra={
            "path": str(path),
            "calibration_photos": len(photos),
            "quantize_s": round(time.perf_counter() - started, 3),
        },
    )
    return path


def ensure_int8(
    source: Path, spec: ModelSpec, version: str, models_dir: Path, cache_dir: Path, batches: list[np.ndarray]
) -> Path:
    """A verified int8 model of the export at ``source``: the seeded one, else one in
    ``cache_dir`` (made from ``batches`` if needed)."""
    name = int8_name(spec, version)
    for candidate in (models_dir / export.EXPORTS_DIR / name, cache_dir / name):
        try:
            export.verify(candidate)
            return candidate
        except export.ExportRefused as exc:
            if candidate.exists():
                log.warning("int8 model refused: %s", exc, extra={"model": spec.name})
    return quantize(source, cache_dir / name, batches)
