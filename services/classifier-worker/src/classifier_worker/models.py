"""Loading models from the models directory and running them.

A :class:`LoadedModel` has an explicit lifecycle: built from its catalog entry, weights loaded,
one warm-up inference run; only then is it ``ready``. Loading the weights into a module needs
torch (imported there); running the model does not: preprocessing, softmax and top-5 are numpy,
whichever runtime computes the logits (a worker without torch loads each model's ONNX export
instead, :mod:`classifier_worker.onnx_only`).
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from classifier_common.catalog import ModelSpec
from classifier_common.domain import Prediction
from classifier_worker.preprocess import Normalizer
from classifier_worker.running import RUNNING
from classifier_worker.runtimes import Runtime, TorchRuntime

if TYPE_CHECKING:
    import torch

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


def weights_version(spec: ModelSpec, models_dir: Path) -> str:
    """The loaded model's version: the catalog's, and the weights file's digest prefix (so new
    weights are a new version, and never meet an older export of the model)."""
    return f"{spec.version}-{file_sha256(spec.weights_path(models_dir))[:12]}"


def build_module(spec: ModelSpec) -> torch.nn.Module:
    if spec.family == "efficientnet_lite":
        from efficientnet_lite_pytorch import EfficientNet

        return EfficientNet.from_name(spec.architecture, num_classes=spec.num_classes)
    if spec.family == "torchvision":
        import torchvision

        return torchvision.models.get_model(spec.architecture, weights=None, num_classes=spec.num_classes)
    raise ValueError(f"unknown model family {spec.family!r}")


class ReleasedModule:
    """Stands in for a torch module whose weights were freed (:meth:`LoadedModel.release_module`)
    or never loaded (a worker without torch): calling it is a bug, and says so."""

    def __call__(self, *_: object) -> Any:
        raise RuntimeError("this model has no torch module (released, or never loaded): its runtime does not use it")


@dataclass
class LoadedModel:
    spec: ModelSpec
    # The torch module (torch.nn.Module), or a ReleasedModule where the runtime needs none.
    module: Any
    version: str
    normalize: Normalizer
    # What runs the forward pass: fp32 torch on ``module`` unless given (or selection.py picks
    # another).
    runtime: Runtime = field(default=None)  # type: ignore[assignment]
    ready: bool = False

    def __post_init__(self) -> None:
        if self.runtime is None:
            self.runtime = TorchRuntime(self.module)

    @classmethod
    def load(cls, spec: ModelSpec, models_dir: Path) -> LoadedModel:
        """The model on fp32 torch, from its weights file (needs torch)."""
        import torch

        from classifier_worker.optimize import for_inference

        path = spec.weights_path(models_dir)
        started = time.perf_counter()
        module = build_module(spec)
        state = torch.load(path, map_location="cpu", weights_only=True)
        module.load_state_dict(state)
        module = for_inference(module)
        version = weights_version(spec, models_dir)
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
        with RUNNING.shared():
            logits = self.runtime(batch)
        scores, indices = top_k(logits, TOP_K)
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


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float32, the way torch's CPU kernel computes it (exp of the logits less
    their row maximum, times the reciprocal of the row's sum): the same scores to float rounding."""
    logits = np.asarray(logits, dtype=np.float32)
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp * (np.float32(1.0) / exp.sum(axis=1, keepdims=True))


def top_k(logits: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(softmax scores, class indices) of each row's ``k`` most likely classes, most likely first.

    Ranked by the logits (softmax keeps their order): where scores differ, the order is the
    scores'; classes whose scores round to the same float32 are ranked by logit, then index."""
    logits = np.asarray(logits, dtype=np.float32)
    indices = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(softmax(logits), indices, axis=1), indices
