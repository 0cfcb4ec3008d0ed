"""Factories for jobs written straight into a store (tests that do not go through the API)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from classifier_common.domain import Job, JobResult, JobStatus, Prediction, new_job_id, utcnow

GOLDFINCH = "n01531178_goldfinch.JPEG"
GOLDFINCH_RESULT = JobResult(predictions=[Prediction(label="goldfinch", class_index=11, score=0.9)], model_version="1")


def queued_job(created_at: datetime | None = None, **overrides: Any) -> Job:
    """A queued gallery job for efficientnet_lite0; ``overrides`` set any other field."""
    fields: dict[str, Any] = {
        "id": new_job_id(),
        "status": JobStatus.queued,
        "model": "efficientnet_lite0",
        "image": GOLDFINCH,
        "source": "gallery",
        "image_sha256": "0" * 64,
        "created_at": created_at or utcnow(),
    }
    fields.update(overrides)
    return Job(**fields)
