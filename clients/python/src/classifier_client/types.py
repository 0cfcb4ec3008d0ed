"""The API's JSON bodies as typed dictionaries: what the client returns is exactly what the API
sent (``json.dumps`` gives it back), and a type checker knows its keys."""

from __future__ import annotations

from typing import Literal, NotRequired, TypedDict

JobStatus = Literal["queued", "running", "succeeded", "failed", "canceled"]
FINISHED: frozenset[str] = frozenset({"succeeded", "failed", "canceled"})


class Prediction(TypedDict):
    label: str
    class_index: int
    score: float


class JobResult(TypedDict):
    predictions: list[Prediction]
    model_version: str
    inference_ms: float | None
    cached: bool


class JobError(TypedDict):
    code: str
    message: str


class Job(TypedDict):
    id: str
    status: JobStatus
    model: str
    image: str  # the gallery name, or the uploaded file's name
    source: Literal["gallery", "upload"]
    image_sha256: str
    created_at: str
    started_at: str | None
    finished_at: str | None
    attempts: int
    result: JobResult | None
    error: JobError | None
    request_id: str | None
    retry_of: str | None  # the failed or canceled job this one retries
    retried_by: str | None  # the job that retries this one
    status_url: str


class Model(TypedDict):
    name: str
    architecture: str
    input_size: int
    num_classes: int
    available: bool  # its weights are installed
    loaded: bool  # a running worker has loaded it
    # The worker pool serving it (None: no pool does, a job for it is refused) and whether a worker
    # of that pool is up; servers without worker pools lack both.
    pool: NotRequired[str | None]
    pool_ready: NotRequired[bool]


class Image(TypedDict):
    name: str
    width: int
    height: int
    bytes: int
    url: str  # the image itself, relative to the API's base URL


class Info(TypedDict, total=False):
    models: list[str]
    images: list[str]
    max_upload_bytes: int  # a larger file is refused with 413 (servers before this field lack it)
    accepted_formats: list[str]
    accepted_media_types: list[str]


def finished(job: Job) -> bool:
    return job["status"] in FINISHED
