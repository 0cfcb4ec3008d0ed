"""A worker without torch installed (the ONNX-only worker image): every model runs on ONNX Runtime
from the files the seed step made of it, and nothing else: the export (``onnxruntime``) and its
int8 model (``onnxruntime-int8``, :mod:`classifier_worker.quantize`).

Such a worker cannot load a checkpoint, export or quantize it, or check a file against fp32
torch. So it takes each of a model's seeded files (``<models dir>/exports``, named after the
model's version, which carries the weights file's digest) only when

- the file matches the sha256 recorded beside it (:func:`classifier_worker.export.verify`), and
- the seed step's check of that very file against fp32 torch on the gallery photos is recorded
  beside it and passed under today's rule (:data:`classifier_worker.selection.MAX_DISAGREEMENTS`).

``auto`` times each file that qualifies on the model's input (the agreement is the seed's) and
takes the faster, as a worker with torch does; a named runtime is used only if its file
qualifies. Otherwise, and when asked for a torch runtime, the worker refuses to start and says
what to run.
"""

from __future__ import annotations

import logging
import statistics
import time
from pathlib import Path

import numpy as np

from classifier_common.catalog import ModelSpec
from classifier_worker import export, quantize
from classifier_worker.models import LoadedModel, ReleasedModule, weights_version
from classifier_worker.preprocess import Normalizer
from classifier_worker.runtimes import (
    ONNX_RUNTIMES,
    ONNXRUNTIME,
    ONNXRUNTIME_INT8,
    TORCH_RUNTIMES,
    OnnxRuntime,
    RuntimeUnavailable,
)
from classifier_worker.selection import AUTO, MAX_DISAGREEMENTS, Selection, Verdict, report

log = logging.getLogger(__name__)

SEED_COMMAND = (
    "python -m classifier_worker.seed --models-dir <models dir> --gallery-dir <gallery dir> "
    "--gallery-source <photos> (make setup; on Kubernetes the chart's seed Job, which runs the worker image with torch)"
)
# Forward passes per runtime when ``auto`` chooses between two: int8 is about twice as fast on the
# CPUs measured, which ten passes tell apart; each pass adds to a cold start (docs/performance.md).
TIMED_PASSES = 10


def check_runtime(requested: str) -> None:
    """Raises RuntimeUnavailable unless ``requested`` can run without torch."""
    if requested in TORCH_RUNTIMES:
        raise RuntimeUnavailable(
            f"CLASSIFIER_RUNTIME={requested} needs torch, which is not installed here (the ONNX-only worker "
            f"image): set CLASSIFIER_RUNTIME={AUTO}, {ONNXRUNTIME} or {ONNXRUNTIME_INT8}, or run the worker "
            f"image with torch"
        )
    if requested not in (AUTO, *ONNX_RUNTIMES):
        raise RuntimeUnavailable(
            f"unknown runtime {requested!r}; without torch only {AUTO}, {ONNXRUNTIME} or {ONNXRUNTIME_INT8}"
        )


def seeded_file(spec: ModelSpec, models_dir: Path, runtime: str = ONNXRUNTIME) -> tuple[Path, export.Agreement]:
    """The model's seeded file for ``runtime`` (the export, or its int8 model) and its recorded
    check, both verified. Raises RuntimeUnavailable, naming what to run, when either is missing,
    does not match, or the check did not pass."""
    version = weights_version(spec, models_dir)
    name = quantize.int8_name(spec, version) if runtime == ONNXRUNTIME_INT8 else export.export_name(spec, version)
    what = "int8 model" if runtime == ONNXRUNTIME_INT8 else "ONNX export"
    path = models_dir / export.EXPORTS_DIR / name
    try:
        digest = export.verify(path)
        record = export.read_agreement(path, digest)
    except export.ExportRefused as exc:
        raise RuntimeUnavailable(
            f"{spec.name}: no verified {what} with a recorded check against torch ({exc}). "
            f"Without torch a worker serves only the seed's files: run the seed with torch installed, "
            f"{SEED_COMMAND}"
        ) from None
    refused = record.refused
    if refused is None and record.photos == 0:
        refused = "it was checked on no gallery photos"
    if refused is None and record.disagreeing > MAX_DISAGREEMENTS:
        refused = (
            f"it disagrees with fp32 torch on {record.disagreeing} of {record.photos} gallery photos "
            f"(at most {MAX_DISAGREEMENTS} allowed)"
        )
    if refused is not None:
        raise RuntimeUnavailable(
            f"{spec.name}: the seed's check of its {what} {path.name} against fp32 torch did not pass "
            f"({refused}; checked {record.checked_at}): a worker without torch cannot serve it. "
            f"Serve the model from the worker image with torch (CLASSIFIER_RUNTIME=torch)"
        )
    return path, record


def load(spec: ModelSpec, models_dir: Path, threads: int, requested: str = ONNXRUNTIME) -> LoadedModel:
    """The model on ONNX Runtime from its seeded files (for ``auto`` the faster that qualifies),
    warmed up, with the recorded checks reported as the runtime metrics a worker with torch
    reports from its own check."""
    check_runtime(requested)
    if not spec.available(models_dir):
        raise RuntimeUnavailable(f"weights for {spec.name} not found at {spec.weights_path(models_dir)}: run the seed")
    started = time.perf_counter()
    verdicts: dict[str, Verdict] = {}
    runtimes: dict[str, OnnxRuntime] = {}
    for name in ONNX_RUNTIMES if requested == AUTO else (requested,):
        try:
            path, record = seeded_file(spec, models_dir, name)
        except RuntimeUnavailable as exc:
            verdicts[name] = Verdict(name, refused=str(exc))
            continue
        runtimes[name] = OnnxRuntime(path, threads, name)
        verdicts[name] = Verdict(name, photos=record.photos, agreeing=record.agreeing)
    if not runtimes:
        raise RuntimeUnavailable("; ".join(v.refused or "" for v in verdicts.values()))
    for name, ms in _time(runtimes, spec).items():
        verdicts[name].ms_per_image = ms
    chosen = min(runtimes, key=lambda name: verdicts[name].ms_per_image or 0.0)
    model = LoadedModel(
        spec=spec,
        module=ReleasedModule(),
        version=weights_version(spec, models_dir),
        normalize=Normalizer(spec),
        runtime=runtimes[chosen],
    )
    model.warm_up()
    log.info(
        "model loaded",
        extra={
            "model": spec.name,
            "model_version": model.version,
            "load_s": round(time.perf_counter() - started, 3),
            "export": str(runtimes[chosen].path),
        },
    )
    report(spec.name, requested, Selection(chosen, verdicts, check_s=time.perf_counter() - started))
    return model


def _time(runtimes: dict[str, OnnxRuntime], spec: ModelSpec, passes: int = TIMED_PASSES) -> dict[str, float]:
    """Median ms per image of each runtime at batch 1, passes interleaved (who goes first
    rotates), after a warm-up pass each. With one runtime there is nothing to choose: not timed."""
    if len(runtimes) < 2:
        return {}
    batch = np.zeros((1, 3, spec.input_size, spec.input_size), dtype=np.float32)
    names = list(runtimes)
    timings: dict[str, list[float]] = {name: [] for name in names}
    for name in names:
        runtimes[name](batch)
    for i in range(passes):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            started = time.perf_counter()
            runtimes[name](batch)
            timings[name].append(time.perf_counter() - started)
    return {name: statistics.median(times) * 1000 for name, times in timings.items()}
