"""The job: what a user submitted, where it is in its lifecycle, and what came of it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field


def utcnow() -> datetime:
    """Millisecond precision: what both stores keep, so a round trip compares equal."""
    now = datetime.now(UTC)
    return now.replace(microsecond=(now.microsecond // 1000) * 1000)


def new_job_id() -> str:
    return uuid.uuid4().hex


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
    # A retry is a new job: ``retry_of`` names the failed or canceled job it repeats, and that
    # job's ``retried_by`` names it back (at most one retry per job).
    retry_of: str | None = None
    retried_by: str | None = None


def status_url(job_id: str) -> str:
    return f"/v1/jobs/{job_id}"


class JobView(Job):
    """A job as the API shows it (the response schema of the gateway and the results service)."""

    status_url: str


class JobPage(BaseModel):
    """A page of GET /v1/jobs: jobs newest first, and the URL of the next page (null on the last)."""

    jobs: list[JobView]
    next: str | None


PRIVATE_FIELDS = frozenset({"idempotency_key", "client_id", "callback_url"})


def job_view(job: Job) -> dict:
    body = job.model_dump(mode="json", exclude=set(PRIVATE_FIELDS))
    body["status_url"] = status_url(job.id)
    return body
