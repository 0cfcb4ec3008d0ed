"""``synthetic_sleep``: a stand-in model for the scaling experiments, never for real answers.

It exists only when ``CLASSIFIER_SYNTHETIC_SERVICE_MS`` is set (see
:func:`classifier_common.catalog.register_synthetic_models`). Inference is a sleep of that many
milliseconds per image, so a worker's capacity is fixed and known (1000 / service_ms jobs per
second) and costs no CPU: on a small machine the experiments can run more workers than there
are cores and still show what the autoscaler does. Images are still read and decoded by the
worker as for any model; the predictions are a fixed, obviously synthetic top-5.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from PIL import Image

from classifier_common.catalog import ModelSpec
from classifier_common.domain import Prediction
from classifier_worker.models import TOP_K, LoadedModel, ReleasedModule
from classifier_worker.preprocess import Normalizer

SYNTHETIC_LABEL = "synthetic"


class SyntheticRuntime:
    """No forward pass: zero logits (:meth:`SyntheticModel.predict` never asks for them)."""

    name = "synthetic"

    def __init__(self, classes: int):
        self.classes = classes

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return np.zeros((len(batch), self.classes), dtype=np.float32)


@dataclass
class SyntheticModel(LoadedModel):
    service_s: float = 0.0

    @classmethod
    def create(cls, spec: ModelSpec, service_ms: int) -> SyntheticModel:
        model = cls(
            spec=spec,
            module=ReleasedModule(),
            version=f"synthetic-{service_ms}ms",
            normalize=Normalizer(spec),
            runtime=SyntheticRuntime(spec.num_classes),
            service_s=service_ms / 1000,
        )
        model.warm_up()
        return model

    def predict(self, images: list[Image.Image]) -> list[list[Prediction]]:
        time.sleep(self.service_s * len(images))
        top = [Prediction(label=SYNTHETIC_LABEL, class_index=i, score=round(0.5 / (i + 1), 4)) for i in range(TOP_K)]
        return [list(top) for _ in images]
