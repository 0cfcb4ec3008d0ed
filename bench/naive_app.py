"""Scenario (4): the tutorial design the system is compared with — one FastAPI process whose
synchronous request handler decodes the upload and runs the model, answering with the top-5.

It uses the worker's own preprocessing and model code and the same torch thread count, so the
difference measured is the serving design only. FastAPI runs a ``def`` handler in its thread
pool, so concurrent requests run the model concurrently, each with its own torch threads.

    python -m bench.naive_app --port 8010 --threads 2 --models-dir data/models
    curl -F file=@photo.jpg http://127.0.0.1:8010/classify
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Annotated

import torch
import uvicorn
from fastapi import FastAPI, File, Form, UploadFile

from classifier_common.catalog import get_spec
from classifier_worker.models import LoadedModel
from classifier_worker.preprocess import decode


def create_app(models_dir: Path, model_name: str) -> FastAPI:
    loaded = LoadedModel.load(get_spec(model_name), models_dir)
    app = FastAPI(title="naive classifier")

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok"}

    @app.post("/classify")
    def classify(file: Annotated[UploadFile, File()], model: Annotated[str, Form()] = model_name) -> dict:
        image = decode(file.file.read(), loaded.spec)
        predictions = loaded.predict([image])[0]
        return {"model": loaded.spec.name, "predictions": [p.model_dump() for p in predictions]}

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--models-dir", type=Path, required=True)
    parser.add_argument("--model", default="efficientnet_lite0")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    uvicorn.run(create_app(args.models_dir, args.model), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
