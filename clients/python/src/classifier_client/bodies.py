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


class QueuePosition(TypedDict):
    ahead: int  # jobs queued before it for the same pool of workers
    estimated_wait_s: float | None  # until it is expected to be finished; None when unknown


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
    queue: NotRequired[QueuePosition]  # while queued (GET only): its place in the queue


class ItemError(TypedDict):
    code: str
    message: str
    details: object


BatchItemStatus = Literal["queued", "running", "succeeded", "failed", "canceled", "refused", "expired"]


class BatchItem(TypedDict):
    index: int
    image: str
    source: Literal["gallery", "upload"]
    job_id: str | None  # None: refused
    status: BatchItemStatus
    status_url: str | None
    result: JobResult | None
    error: ItemError | None


class Batch(TypedDict):
    id: str
    status: Literal["in_progress", "done"]
    model: str
    created_at: str
    status_url: str
    total: int
    accepted: int
    refused: int
    counts: dict[str, int]  # items per status (every BatchItemStatus, zeros included)
    items: list[BatchItem]


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
    batch_max_items: int  # the most items one batch takes (servers before batches lack it)
    batch_max_bytes: int


def finished(job: Job) -> bool:
    return job["status"] in FINISHED


class BrokerQueue(TypedDict):
    ready: int
    unacked: int | None  # None where the broker does not report it (RabbitMQ over AMQP)
    consumers: int
    dead_letters: int


class PoolStats(TypedDict):
    pool: str
    queue: str
    models: list[str]
    backlog: int  # queued + running
    queued: int
    running: int
    broker: BrokerQueue | None  # None when the broker could not be asked
    ready_workers: int
    finished: int  # in the window, by a worker (succeeded or failed)
    failed: int
    dead_lettered: int
    jobs_per_s: float  # finished in the window over the window
    busy_jobs_per_s: float | None  # while working: what a backlog drains at
    p50_latency_s: float | None
    p95_latency_s: float | None


class Stats(TypedDict):
    window_s: int
    generated_at: str
    broker_error: str | None
    pools: list[PoolStats]
