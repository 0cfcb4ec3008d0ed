"""The job: what a user submitted, where it is in its lifecycle, and what came of it."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field

from classifier_common.random_ids import uuid4_hex


def utcnow() -> datetime:
    """Millisecond precision: what both stores keep, so a round trip compares equal."""
    now = datetime.now(UTC)
    return now.replace(microsecond=(now.microsecond // 1000) * 1000)


def new_job_id() -> str:
    return uuid4_hex()


class JobStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    canceled = "canceled"

    @property
    def finished(self) -> bool:
        return self in FINISHED


FINISHED = frozenset({JobStatus.succeeded, JobStatus.failed, JobStatus.canceled})
RETRYABLE = frozenset({JobStatus.failed, JobStatus.canceled})


class Prediction(BaseModel):
    label: str
    class_index: int = Field(ge=0)
    score: float = Field(ge=0.0, le=1.0)


class JobResult(BaseModel):
    predictions: list[Prediction]
    model_version: str
    inference_ms: float | None = None
    cached: bool = False


class JobError(BaseModel):
    code: str
    message: str


class Job(BaseModel):
    id: str
    status: JobStatus
    model: str
    image: str  # the gallery name, or the uploaded file's name
    source: Literal["gallery", "upload"]
    image_sha256: str
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    attempts: int = 0
    result: JobResult | None = None
    error: JobError | None = None
    request_id: str | None = None
    idempotency_key: str | None = None
    # Who submitted it: a digest of the API key, "" when keys are off. An Idempotency-Key is
    # unique per client, so one client's key never finds another's job.
    client_id: str = ""
    callback_url: str | None = None
    # The batch it was submitted in (POST /v1/batches), None for a job submitted alone.
    batch_id: str | None = None
    # A retry is a new job: ``retry_of`` names the failed or canceled job it repeats, and that
    # job's ``retried_by`` names it back (at most one retry per job).
    retry_of: str | None = None
    retried_by: str | None = None


class ItemError(BaseModel):
    """Why one item of a batch was refused: the error body's code and message, as a single
    submission of that item would have answered them."""

    code: str
    message: str
    details: Any = None


class BatchItem(BaseModel):
    index: int = Field(ge=0)  # its place in the request
    image: str  # the gallery name, or the uploaded file's name
    source: Literal["gallery", "upload"]
    job_id: str | None = None  # accepted: the job made of it
    error: ItemError | None = None  # refused: why


class Batch(BaseModel):
    """Many images submitted in one request: one job per accepted item."""

    id: str
    model: str
    created_at: datetime
    items: list[BatchItem]
    client_id: str = ""
    idempotency_key: str | None = None
    # A digest of what was asked (model, callback, every item's name, source and content): a
    # replay with the same Idempotency-Key must ask the same.
    request_sha256: str = ""
    callback_url: str | None = None


def status_url(job_id: str) -> str:
    return f"/v1/jobs/{job_id}"


class QueuePosition(BaseModel):
    """Where a queued job stands in its pool's queue."""

    ahead: int = Field(ge=0, description="Jobs queued before this one for the same pool of workers.")
    estimated_wait_s: float | None = Field(
        ge=0,
        description="Seconds until this job is expected to be finished, from the jobs ahead and the pool's "
        "recent throughput; null when unknown (too few jobs finished lately, or no worker of the pool ready).",
    )


class JobView(Job):
    """A job as the API shows it (the response schema of the gateway and the results service)."""

    status_url: str
    queue: QueuePosition | None = Field(
        default=None, description="While the job is queued (GET only): its place in the queue. Absent otherwise."
    )


class JobPage(BaseModel):
    """A page of GET /v1/jobs: jobs newest first, and the URL of the next page (null on the last)."""

    jobs: list[JobView]
    next: str | None


PRIVATE_FIELDS = frozenset({"idempotency_key", "client_id", "callback_url"})


def batch_url(batch_id: str) -> str:
    return f"/v1/batches/{batch_id}"


def job_view(job: Job) -> dict:
    body = job.model_dump(mode="json", exclude=set(PRIVATE_FIELDS))
    body["status_url"] = status_url(job.id)
    return body
