"""Loading models from the models directory and running them.

A :class:`LoadedModel` has an explicit lifecycle: built from its catalog entry, weights loaded,
one warm-up inference run; only then is it ``ready``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import hashlib
import logging
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import torch
from PIL import Image

from classifier_common.catalog import ModelSpec
from classifier_common.domain import Prediction
from classifier_worker.optimize import RUNNING, for_inference
from classifier_worker.preprocess import Normalizer
from classifier_worker.runtimes import Runtime, TorchRuntime

log = logging.getLogger(__name__)

TOP_K = 5


# The ImageNet-1k category names in class-index order, as torchvision publishes them
# (weights.meta["categories"]; a test checks the copy). Read from a file because importing
# torchvision would add ~165 MB to every worker's memory for this list alone.
CATEGORIES_FILE = Path(__file__).parent / "static" / "imagenet_categories.txt"


@cache
def imagenet_categories() -> tuple[str, ...]:
    return tuple(CATEGORIES_FILE.read_text(encoding="utf-8").splitlines())


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def build_module(spec: ModelSpec) -> torch.nn.Module:
    if spec.family == "efficientnet_lite":
        from efficientnet_lite_pytorch import EfficientNet

        return EfficientNet.from_name(spec.architecture, num_classes=spec.num_classes)
    if spec.family == "torchvision":
        import torchvision

        return torchvision.models.get_model(spec.architecture, weights=None, num_classes=spec.num_classes)
    raise ValueError(f"unknown model family {spec.family!r}")


class ReleasedModule(torch.nn.Module):
    """Stands in for a module whose weights were freed (:meth:`LoadedModel.release_module`):
    calling it is a bug, and says so."""

    def forward(self, *_: object) -> torch.Tensor:
        raise RuntimeError("this model's torch module was released: its runtime does not use it")


def return_freed_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS (glibc's malloc_trim), so that
    memory released by Python objects shows in the process's RSS. A no-op without glibc."""
    gc.collect()
    name = ctypes.util.find_library("c")
    if name is None:
        return
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        return
    trim(0)


@dataclass
class LoadedModel:
    spec: ModelSpec
    module: torch.nn.Module
    version: str
    normalize: Normalizer
    # What runs the forward pass: fp32 torch on ``module`` unless selection.py picks another.
    runtime: Runtime = field(init=False)
    ready: bool = False

    def __post_init__(self) -> None:
        self.runtime = TorchRuntime(self.module)

    @classmethod
    def load(cls, spec: ModelSpec, models_dir: Path) -> LoadedModel:
        path = spec.weights_path(models_dir)
        started = time.perf_counter()
        module = build_module(spec)
        state = torch.load(path, map_location="cpu", weights_only=True)
        module.load_state_dict(state)
        module = for_inference(module)
        version = f"{spec.version}-{file_sha256(path)[:12]}"
        model = cls(spec=spec, module=module, version=version, normalize=Normalizer(spec))
        model.warm_up()
        log.info(
            "model loaded",
            extra={"model": spec.name, "model_version": version, "load_s": round(time.perf_counter() - started, 3)},
        )
        return model

    @property
    def module_released(self) -> bool:
        return isinstance(self.module, ReleasedModule)

    def release_module(self) -> None:
        """Drop the torch module (the model's weights) once the runtime runs without it (ONNX
        Runtime holds its own copy of the weights). The caller returns the memory to the OS."""
        if self.runtime.name == TorchRuntime.name or getattr(self.runtime, "module", None) is self.module:
            raise RuntimeError(f"{self.spec.name}'s runtime {self.runtime.name} runs on its torch module")
        self.module = ReleasedModule()

    def warm_up(self) -> None:
        """One inference on a blank image: the first forward pass allocates and picks kernels."""
        blank = Image.new("RGB", (self.spec.input_size, self.spec.input_size), (127, 127, 127))
        predictions = self.predict([blank])
        if len(predictions) != 1 or len(predictions[0]) != TOP_K:
            raise RuntimeError(f"warm-up inference of {self.spec.name} returned {predictions!r}")
        self.ready = True

    def predict(self, images: list[Image.Image]) -> list[list[Prediction]]:
        """Top-5 predictions, score descending, for each preprocessed image."""
        batch = self.normalize(images)
        with RUNNING.shared(), torch.inference_mode():
            probabilities = self.runtime(batch).softmax(dim=1)
        scores, indices = probabilities.topk(TOP_K, dim=1)
        categories = imagenet_categories() if self.spec.num_classes == 1000 else None
        out = []
        for row_scores, row_indices in zip(scores.tolist(), indices.tolist(), strict=True):
            out.append(
                [
                    Prediction(
                        label=categories[i] if categories else str(i),
                        class_index=i,
                        score=min(1.0, max(0.0, s)),
                    )
                    for s, i in zip(row_scores, row_indices, strict=True)
                ]
            )
        return out
