"""Which runtime (:mod:`classifier_worker.runtimes`) runs a model, decided when the worker starts.

``CLASSIFIER_RUNTIME=torch`` uses the fp32 reference as it is. Any other choice is checked first on
the gallery photos: each candidate classifies every photo at batch 1, interleaved with the fp32
reference photo by photo (so all see the machine alike), which gives

- its top-1 agreement with fp32 torch: a runtime that disagrees on more than
  :data:`MAX_DISAGREEMENTS` photos is refused;
- its median milliseconds per image: the self-benchmark.

``auto`` then takes the fastest runtime not refused (the reference always qualifies); a named
runtime is used if it was not refused, and otherwise the worker does not start. Candidates that
cannot run here are left out before the check: bf16 on a CPU without AVX512-BF16 or AMX, CUDA
without a GPU (or on a CPU build of torch), ONNX
Runtime when the export cannot be made, int8 when it cannot be quantized (it is calibrated on the
gallery photos, :mod:`classifier_worker.quantize`). Both the check and the choice are logged and exported as
metrics (``classifier_runtime_*``, docs/metrics.md).

The seed step runs the same check on each export and int8 model it makes and records the verdict
beside it (:func:`check_onnx`); a worker without torch relies on that record (:mod:`classifier_worker.onnx_only`).
"""

from __future__ import annotations

import functools
import logging
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from classifier_common import metrics
from classifier_common.errors import ImageRejected
from classifier_common.images import Gallery
from classifier_worker import export, quantize
from classifier_worker.cpu import this_cpu_has_bf16
from classifier_worker.models import LoadedModel
from classifier_worker.preprocess import decode
from classifier_worker.running import RUNNING
from classifier_worker.runtimes import (
    NAMES,
    ONNXRUNTIME,
    ONNXRUNTIME_INT8,
    TORCH,
    TORCH_BF16,
    TORCH_CUDA,
    OnnxRuntime,
    Runtime,
    RuntimeUnavailable,
    TorchBf16Runtime,
    TorchCudaRuntime,
    TorchRuntime,
)

log = logging.getLogger(__name__)

AUTO = "auto"
CHOICES = (AUTO, *NAMES)
# Of the gallery photos checked (the 41 seeded ones, less any that fail to decode), at most this
# many may get another top-1 class than fp32 torch gives.
MAX_DISAGREEMENTS = 1


@dataclass
class Verdict:
    runtime: str
    photos: int = 0
    agreeing: int = 0
    ms_per_image: float | None = None  # median at batch 1
    refused: str | None = None  # why it may not be used

    @property
    def disagreeing(self) -> int:
        return self.photos - self.agreeing


@dataclass
class Selection:
    chosen: str
    verdicts: dict[str, Verdict]
    check_s: float


def gallery_batches(loaded: LoadedModel, gallery_dir: Path) -> list[np.ndarray]:
    """Each gallery photo as the batch of one the worker would build for it. A photo that cannot
    be read or decoded is left out with a warning (as the gallery leaves out a file that is no
    image): one bad file never stops the worker from starting."""
    gallery = Gallery(gallery_dir)
    batches = []
    for info in gallery.list():
        try:
            image = decode(gallery.read(info.name), loaded.spec)
        except (ImageRejected, OSError) as exc:
            why = exc.message if isinstance(exc, ImageRejected) else f"{type(exc).__name__}: {exc}"
            log.warning(
                "gallery photo %s left out of the runtime check of %s: %s",
                info.name,
                loaded.spec.name,
                why,
                extra={"model": loaded.spec.name, "file": info.name},
            )
            continue
        batches.append(loaded.normalize([image]))
    return batches


def candidates(
    requested: str,
    loaded: LoadedModel,
    batches: list[np.ndarray],
    *,
    models_dir: Path,
    cache_dir: Path,
    threads: int,
) -> tuple[dict[str, Runtime], dict[str, str]]:
    """({name: runtime} to check, {name: why it cannot run here}) for ``requested``; ``batches``,
    the gallery photos preprocessed, calibrate an int8 model that has to be made."""
    names = [n for n in NAMES if n != TORCH] if requested == AUTO else [requested]

    @functools.cache  # the export, made once for both ONNX runtimes
    def onnx_export() -> Path:
        return export.ensure_export(loaded.module, loaded.spec, loaded.version, models_dir, cache_dir)

    def int8() -> Runtime:
        path = quantize.ensure_int8(onnx_export(), loaded.spec, loaded.version, models_dir, cache_dir, batches)
        return OnnxRuntime(path, threads, ONNXRUNTIME_INT8)

    makers: dict[str, Callable[[], Runtime]] = {
        TORCH_BF16: lambda: _bf16(loaded),
        TORCH_CUDA: lambda: TorchCudaRuntime(loaded.module),
        ONNXRUNTIME: lambda: OnnxRuntime(onnx_export(), threads),
        ONNXRUNTIME_INT8: int8,
    }
    made: dict[str, Runtime] = {}
    unavailable: dict[str, str] = {}
    for name in names:
        try:
            made[name] = makers[name]()
        except Exception as exc:  # noqa: BLE001 - any failure to build one only rules that one out
            unavailable[name] = f"{type(exc).__name__}: {exc}"
    return made, unavailable


def _bf16(loaded: LoadedModel) -> Runtime:
    if not this_cpu_has_bf16():
        raise RuntimeUnavailable("this CPU has neither AVX512-BF16 nor AMX")
    return TorchBf16Runtime(loaded.module)


def check(reference: Runtime, runtimes: dict[str, Runtime], batches: list[np.ndarray]) -> dict[str, Verdict]:
    """Top-1 agreement with ``reference`` and median ms per image of each runtime (and of the
    reference itself) over ``batches``, run interleaved, one batch at a time."""
    everyone = {reference.name: reference, **runtimes}
    verdicts = {name: Verdict(name, photos=len(batches)) for name in everyone}
    timings: dict[str, list[float]] = {name: [] for name in everyone}
    with RUNNING.shared():
        for name, runtime in everyone.items():  # warm-up: the first pass allocates and picks kernels
            try:
                runtime(batches[0])
            except Exception as exc:  # noqa: BLE001 - a runtime that fails is refused, not fatal
                verdicts[name].refused = f"failed: {type(exc).__name__}: {exc}"
        running = [name for name in everyone if verdicts[name].refused is None]
        for i, batch in enumerate(batches):
            order = running[i % len(running) :] + running[: i % len(running)]  # who goes first rotates
            top1: dict[str, int] = {}
            for name in order:
                started = time.perf_counter()
                try:
                    logits = everyone[name](batch)
                except Exception as exc:  # noqa: BLE001
                    verdicts[name].refused = f"failed: {type(exc).__name__}: {exc}"
                    continue
                timings[name].append(time.perf_counter() - started)
                top1[name] = int(logits.argmax(axis=1)[0])
            expected = top1.get(reference.name)
            for name, index in top1.items():
                verdicts[name].agreeing += index == expected
    for name, verdict in verdicts.items():
        if timings[name]:
            verdict.ms_per_image = statistics.median(timings[name]) * 1000
        if verdict.refused is None and verdict.disagreeing > MAX_DISAGREEMENTS:
            verdict.refused = (
                f"disagrees with fp32 torch on {verdict.disagreeing} of {verdict.photos} gallery photos "
                f"(at most {MAX_DISAGREEMENTS} allowed)"
            )
    return verdicts


def choose(requested: str, verdicts: dict[str, Verdict]) -> str:
    """The runtime to use: ``requested`` if it was not refused, for ``auto`` the fastest not
    refused (fp32 torch when nothing was timed)."""
    if requested != AUTO:
        verdict = verdicts.get(requested)
        if verdict is None or verdict.refused is not None:
            why = verdict.refused if verdict else "not checked"
            raise RuntimeUnavailable(f"runtime {requested} cannot be used: {why}")
        return requested
    timed = [v for v in verdicts.values() if v.refused is None and v.ms_per_image is not None]
    return min(timed, key=lambda v: v.ms_per_image or 0.0).runtime if timed else TORCH


def select_runtime(
    loaded: LoadedModel, requested: str, *, models_dir: Path, gallery_dir: Path, cache_dir: Path, threads: int
) -> Selection:
    """Check the candidates for ``requested``, set ``loaded.runtime`` to the chosen one, log and
    export the outcome. Raises RuntimeUnavailable when a named runtime cannot be used."""
    if requested not in CHOICES:
        raise RuntimeUnavailable(f"unknown runtime {requested!r}; known: {', '.join(CHOICES)}")
    started = time.perf_counter()
    reference = TorchRuntime(loaded.module)
    runtimes: dict[str, Runtime] = {}
    unavailable: dict[str, str] = {}
    batches = gallery_batches(loaded, gallery_dir) if requested != TORCH else []
    if requested != TORCH:
        runtimes, unavailable = candidates(
            requested, loaded, batches, models_dir=models_dir, cache_dir=cache_dir, threads=threads
        )
    if runtimes and not batches:
        unavailable.update({name: f"no gallery photos in {gallery_dir} to check it on" for name in runtimes})
        runtimes = {}
    verdicts = check(reference, runtimes, batches) if runtimes else {TORCH: Verdict(TORCH)}
    verdicts.update({name: Verdict(name, refused=why) for name, why in unavailable.items()})
    chosen = choose(requested, verdicts)
    loaded.runtime = reference if chosen == TORCH else runtimes[chosen]
    selection = Selection(chosen, verdicts, time.perf_counter() - started)
    report(loaded.spec.name, requested, selection)
    return selection


def check_onnx(loaded: LoadedModel, path: Path, name: str, batches: list[np.ndarray], threads: int) -> Verdict:
    """The model file at ``path`` of ``loaded`` (on torch), run as ``name`` (one of the ONNX
    runtimes), checked against fp32 torch on ``batches`` (:func:`gallery_batches`) as a worker
    checks it at start-up (the seed step records the verdict)."""
    return check(TorchRuntime(loaded.module), {name: OnnxRuntime(path, threads, name)}, batches)[name]


def report(model: str, requested: str, selection: Selection) -> None:
    """Log the verdicts and the choice, and export them as the classifier_runtime_* metrics."""
    for name, verdict in selection.verdicts.items():
        log.info(
            "runtime checked",
            extra={
                "model": model,
                "runtime": name,
                "agreeing": verdict.agreeing,
                "photos": verdict.photos,
                "ms_per_image": round(verdict.ms_per_image, 3) if verdict.ms_per_image else None,
                "refused": verdict.refused,
            },
        )
        if verdict.photos:
            metrics.RUNTIME_DISAGREEMENTS.labels(model, name).set(verdict.disagreeing)
        if verdict.ms_per_image is not None:
            metrics.RUNTIME_FORWARD_SECONDS.labels(model, name).set(verdict.ms_per_image / 1000)
        metrics.RUNTIME_SELECTED.labels(model, name).set(0)
    metrics.RUNTIME_SELECTED.labels(model, selection.chosen).set(1)
    metrics.RUNTIME_CHECK_SECONDS.labels(model).set(selection.check_s)
    log.info(
        "runtime chosen",
        extra={
            "model": model,
            "requested": requested,
            "runtime": selection.chosen,
            "check_s": round(selection.check_s, 3),
        },
    )
