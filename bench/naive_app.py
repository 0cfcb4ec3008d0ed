"""Scenario (4): the tutorial design the system is compared with — one FastAPI process whose
synchronous request handler decodes the upload and runs the model, answering with the top-5.

``--code tutorial`` (row 4, the default) is written the way the tutorials write it: the model built
and its weights loaded, ``eval()``, and in the handler PIL's resize of the whole photo, a centre
crop, the normalisation and the forward pass under ``no_grad``. ``--code worker`` (row 4w) runs
the worker's own preprocessing and model code instead (the model rewritten for inference), so
that 4w against (3) measures the serving design alone. Both use the same torch thread count as
the system; FastAPI runs a ``def`` handler in its thread pool, so concurrent requests run the model
concurrently.

    python -m bench.naive_app --port 8010 --threads 1 --models-dir data/models [--code worker]
    curl -F file=@photo.jpg http://127.0.0.1:8010/classify
"""

from __future__ import annotations

import argparse
import io
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
import uvicorn
from fastapi import FastAPI, File, Form, UploadFile
from PIL import Image

from classifier_common.catalog import get_spec
from classifier_worker.models import LoadedModel, build_module, imagenet_categories
from classifier_worker.preprocess import decode

Classify = Callable[[bytes], list[dict]]


def tutorial(models_dir: Path, model_name: str) -> Classify:
    spec = get_spec(model_name)
    model = build_module(spec)
    model.load_state_dict(torch.load(spec.weights_path(models_dir), map_location="cpu"))
    model.eval()
    labels = imagenet_categories()

    def preprocess(image: Image.Image) -> torch.Tensor:
        scale = spec.resize_size / min(image.size)
        image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BILINEAR)
        left, top = (image.width - spec.input_size) // 2, (image.height - spec.input_size) // 2
        image = image.crop((left, top, left + spec.input_size, top + spec.input_size))
        x = torch.from_numpy(np.asarray(image, dtype=np.float32)).permute(2, 0, 1)
        return (x - torch.tensor(spec.mean).view(3, 1, 1)) / torch.tensor(spec.std).view(3, 1, 1)

    def classify(data: bytes) -> list[dict]:
        image = Image.open(io.BytesIO(data)).convert("RGB")
        with torch.no_grad():
            probabilities = model(preprocess(image).unsqueeze(0)).softmax(dim=1)[0]
        scores, indices = probabilities.topk(5)
        return [
            {"label": labels[i], "class_index": i, "score": s}
            for s, i in zip(scores.tolist(), indices.tolist(), strict=True)
        ]

    return classify


def worker_code(models_dir: Path, model_name: str) -> Classify:
    loaded = LoadedModel.load(get_spec(model_name), models_dir)

    def classify(data: bytes) -> list[dict]:
        return [p.model_dump() for p in loaded.predict([decode(data, loaded.spec)])[0]]

    return classify


CODE = {"tutorial": tutorial, "worker": worker_code}


def create_app(models_dir: Path, model_name: str, code: str = "tutorial") -> FastAPI:
    classify_bytes = CODE[code](models_dir, model_name)
    app = FastAPI(title="naive classifier")

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok"}

    @app.post("/classify")
    def classify(file: Annotated[UploadFile, File()], model: Annotated[str, Form()] = model_name) -> dict:
        return {"model": model_name, "predictions": classify_bytes(file.file.read())}

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--models-dir", type=Path, required=True)
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--code", choices=sorted(CODE), default="tutorial")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    uvicorn.run(
        create_app(args.models_dir, args.model, args.code), host="127.0.0.1", port=args.port, log_level="warning"
    )


if __name__ == "__main__":
    main()
