"""Scenario (7): the asynchronous design most Python teams build instead of this system — a
FastAPI front that hands each upload to a Celery task on the same RabbitMQ, and a Redis result
backend the front waits on; the task runs the worker's own model code (loading, preprocessing,
the runtime ``CLASSIFIER_RUNTIME`` chooses).

The front speaks the system's job API, so the same clients drive it (bench.scenarios.system_job):

- ``POST /v1/jobs`` (multipart ``file``, ``model``) -> 202, ``Location: /v1/jobs/<task id>``;
- ``GET /v1/jobs/<id>?wait=S`` -> the task's result once Redis has it (``succeeded``), else after
  S seconds ``running``.

Celery runs as its users run it: a prefork worker, one child per core, each with its own model
(``BENCH_CELERY_QUEUE`` names the queue, so that a run on a shared RabbitMQ keeps to its own).

    BENCH_CELERY_QUEUE=bench.celery python -m celery -A bench.celery_app worker --concurrency 2
    BENCH_CELERY_QUEUE=bench.celery python -m bench.celery_app --port 8020
"""

from __future__ import annotations

import argparse
import base64
import os
from typing import Annotated, Any

import uvicorn
from celery import Celery, signals
from celery.exceptions import TimeoutError as ResultTimeout
from celery.result import AsyncResult
from fastapi import FastAPI, File, Form, Response, UploadFile

BROKER = os.environ.get("BENCH_CELERY_BROKER", "amqp://guest:guest@127.0.0.1:5672//")
BACKEND = os.environ.get("BENCH_CELERY_BACKEND", "redis://127.0.0.1:6379/0")
QUEUE = os.environ.get("BENCH_CELERY_QUEUE", "bench.celery")
MODEL = "efficientnet_lite0"

app = Celery("bench_celery", broker=BROKER, backend=BACKEND)
app.conf.update(
    task_default_queue=QUEUE,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_expires=3600,
    broker_connection_retry_on_startup=True,
    # No remote-control exchange on the shared broker (nothing here uses celery inspect/control).
    worker_enable_remote_control=False,
)

_loaded: dict[str, Any] = {}  # in each Celery child: the model


@signals.worker_process_init.connect
def _load_model(**_: object) -> None:
    """Each prefork child loads the model as the system's worker does (torch is imported here, in
    the children only: the front never imports it)."""
    import torch

    from classifier_common.catalog import get_spec
    from classifier_common.config import Settings
    from classifier_worker.export import default_cache_dir
    from classifier_worker.models import LoadedModel
    from classifier_worker.selection import select_runtime

    settings = Settings()
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    model = LoadedModel.load(get_spec(MODEL), settings.models_dir)
    select_runtime(
        model,
        settings.runtime,
        models_dir=settings.models_dir,
        gallery_dir=settings.gallery_dir,
        cache_dir=settings.runtime_cache_dir or default_cache_dir(),
        threads=torch.get_num_threads(),
    )
    _loaded["model"] = model


@app.task(name="classify")
def classify(image_b64: str) -> list[dict]:
    from classifier_worker.preprocess import decode

    model = _loaded["model"]
    return [p.model_dump() for p in model.predict([decode(base64.b64decode(image_b64), model.spec)])[0]]


def create_app() -> FastAPI:
    api = FastAPI(title="FastAPI + Celery classifier")

    @api.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok"}

    @api.post("/v1/jobs", status_code=202)
    def submit(file: Annotated[UploadFile, File()], response: Response, model: Annotated[str, Form()] = MODEL) -> dict:
        task = classify.delay(base64.b64encode(file.file.read()).decode())
        response.headers["Location"] = f"/v1/jobs/{task.id}"
        return {"id": task.id, "status": "queued"}

    @api.get("/v1/jobs/{job_id}")
    def status(job_id: str, wait: float = 0) -> dict:
        result = AsyncResult(job_id, app=app)
        try:
            predictions = result.get(timeout=wait) if wait else result.result if result.ready() else None
        except ResultTimeout:
            predictions = None
        except Exception as exc:  # noqa: BLE001 - the task's own failure, reported as the job's
            return {"id": job_id, "status": "failed", "error": repr(exc)}
        if predictions is None:
            return {"id": job_id, "status": "running"}
        return {"id": job_id, "status": "succeeded", "result": {"predictions": predictions, "cached": False}}

    return api


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(create_app(), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
