"""Scenario (5): BentoML serving the same model with the worker's own preprocessing and model code.

Configured like the system it is compared with: as many worker processes as the system has
workers (``--arg workers=N``), each with the same torch thread count (``--arg threads=T``); a
synchronous API method (BentoML runs it in a thread, one call at a time per worker by default);
no adaptive batching (batch 1 measured fastest for this model on this CPU). Runs from the
separate virtualenv that bench/install-bentoml.sh makes, so BentoML's dependencies cannot
disturb the project's pins:

    .tools/bentoml/bin/bentoml serve bench.bento_service:Classifier --port 3000 --arg workers=2
    curl -F file=@photo.jpg http://127.0.0.1:3000/classify

The model directory comes from CLASSIFIER_MODELS_DIR, as for the worker.
"""

from __future__ import annotations

from pathlib import Path

import bentoml
import torch
from pydantic import BaseModel

from classifier_common.catalog import DEFAULT_MODEL, get_spec
from classifier_common.config import Settings
from classifier_worker.models import LoadedModel
from classifier_worker.preprocess import decode


class Arguments(BaseModel):
    workers: int = 1
    threads: int = 1


args = bentoml.use_arguments(Arguments)


@bentoml.service(workers=args.workers, traffic={"timeout": 120})
class Classifier:
    def __init__(self) -> None:
        torch.set_num_threads(args.threads)
        self.model = LoadedModel.load(get_spec(DEFAULT_MODEL), Settings().models_dir)

    @bentoml.api
    def classify(self, file: Path) -> dict:
        image = decode(file.read_bytes(), self.model.spec)
        predictions = self.model.predict([image])[0]
        return {"model": self.model.spec.name, "predictions": [p.model_dump() for p in predictions]}
