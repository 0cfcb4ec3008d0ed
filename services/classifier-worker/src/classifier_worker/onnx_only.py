"""A worker without torch installed (the ONNX-only worker image): every model runs on ONNX Runtime
from the export the seed step made of it, and nothing else.

Such a worker cannot load a checkpoint, export it, or check an export against fp32 torch. So it
takes each model's seeded export (``<models dir>/exports``, named after the model's version, which
carries the weights file's digest) only when

- the export matches the sha256 recorded beside it (:func:`classifier_worker.export.verify`), and
- the seed step's check of that very file against fp32 torch on the gallery photos is recorded
  beside it and passed under today's rule (:data:`classifier_worker.selection.MAX_DISAGREEMENTS`).

Otherwise, and when asked for a torch runtime, it refuses to start and says what to run.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from classifier_common.catalog import ModelSpec
from classifier_worker import export
from classifier_worker.models import LoadedModel, ReleasedModule, weights_version
from classifier_worker.preprocess import Normalizer
from classifier_worker.runtimes import ONNXRUNTIME, TORCH_RUNTIMES, OnnxRuntime, RuntimeUnavailable
from classifier_worker.selection import AUTO, MAX_DISAGREEMENTS, Selection, Verdict, report

log = logging.getLogger(__name__)

SEED_COMMAND = (
    "python -m classifier_worker.seed --models-dir <models dir> --gallery-dir <gallery dir> "
    "--gallery-source <photos> (make setup; on Kubernetes the chart's seed Job, which runs the worker image with torch)"
)


def check_runtime(requested: str) -> None:
    """Raises RuntimeUnavailable unless ``requested`` can run without torch (auto: ONNX Runtime,
    the only runtime there is)."""
    if requested in TORCH_RUNTIMES:
        raise RuntimeUnavailable(
            f"CLASSIFIER_RUNTIME={requested} needs torch, which is not installed here (the ONNX-only worker "
            f"image): set CLASSIFIER_RUNTIME={ONNXRUNTIME} (or {AUTO}), or run the worker image with torch"
        )
    if requested not in (AUTO, ONNXRUNTIME):
        raise RuntimeUnavailable(f"unknown runtime {requested!r}; without torch only {AUTO} or {ONNXRUNTIME}")


def seeded_export(spec: ModelSpec, models_dir: Path) -> tuple[Path, export.Agreement]:
    """The model's seeded export and its recorded check, both verified. Raises RuntimeUnavailable,
    naming what to run, when either is missing, does not match, or the check did not pass."""
    version = weights_version(spec, models_dir)
    path = models_dir / export.EXPORTS_DIR / export.export_name(spec, version)
    try:
        digest = export.verify(path)
        record = export.read_agreement(path, digest)
    except export.ExportRefused as exc:
        raise RuntimeUnavailable(
            f"{spec.name}: no verified ONNX export with a recorded check against torch ({exc}). "
            f"Without torch a worker serves only the seed's exports: run the seed with torch installed, "
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
            f"{spec.name}: the seed's check of its ONNX export {path.name} against fp32 torch did not pass "
            f"({refused}; checked {record.checked_at}): a worker without torch cannot serve it. "
            f"Serve the model from the worker image with torch (CLASSIFIER_RUNTIME=torch)"
        )
    return path, record


def load(spec: ModelSpec, models_dir: Path, threads: int, requested: str = ONNXRUNTIME) -> LoadedModel:
    """The model on ONNX Runtime from its seeded export, warmed up, with the recorded check
    reported as the runtime metrics a worker with torch reports from its own check."""
    check_runtime(requested)
    if not spec.available(models_dir):
        raise RuntimeUnavailable(f"weights for {spec.name} not found at {spec.weights_path(models_dir)}: run the seed")
    started = time.perf_counter()
    path, record = seeded_export(spec, models_dir)
    model = LoadedModel(
        spec=spec,
        module=ReleasedModule(),
        version=weights_version(spec, models_dir),
        normalize=Normalizer(spec),
        runtime=OnnxRuntime(path, threads),
    )
    model.warm_up()
    log.info(
        "model loaded",
        extra={
            "model": spec.name,
            "model_version": model.version,
            "load_s": round(time.perf_counter() - started, 3),
            "export": str(path),
        },
    )
    verdict = Verdict(ONNXRUNTIME, photos=record.photos, agreeing=record.agreeing)
    report(spec.name, requested, Selection(ONNXRUNTIME, {ONNXRUNTIME: verdict}, check_s=0.0))  # none ran here
    return model
