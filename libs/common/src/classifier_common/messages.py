"""The queue message: what the gateway publishes and a worker consumes.

The body is JSON. ``v`` is the schema version; a message whose version a worker does not know,
or that is not valid JSON of this shape, is a :class:`PoisonMessage` and goes to the
dead-letter queue. Uploaded images travel in the message (base64), gallery images by name.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime

from pydantic import BaseModel, ValidationError

from classifier_common.domain import Job
from classifier_common.errors import PoisonMessage

SCHEMA_VERSION = 1


class JobMessage(BaseModel):
    v: int = SCHEMA_VERSION
    job_id: str
    model: str
    image: str  # gallery name, or the upload's file name
    source: str  # "gallery" | "upload"
    image_sha256: str
    image_b64: str | None = None  # the upload's bytes
    request_id: str | None = None
    enqueued_at: datetime

    @classmethod
    def for_job(cls, job: Job, upload: bytes | None = None) -> JobMessage:
        return cls(
            job_id=job.id,
            model=job.model,
            image=job.image,
            source=job.source,
            image_sha256=job.image_sha256,
            image_b64=base64.b64encode(upload).decode("ascii") if upload is not None else None,
            request_id=job.request_id,
            enqueued_at=job.created_at,
        )

    def upload_bytes(self) -> bytes | None:
        return base64.b64decode(self.image_b64) if self.image_b64 is not None else None

    def encode(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()


def decode(body: bytes) -> JobMessage:
    try:
        raw = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PoisonMessage(f"message body is not JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise PoisonMessage("message body is not a JSON object")
    if raw.get("v") != SCHEMA_VERSION:
        raise PoisonMessage(f"unknown message schema version {raw.get('v')!r}")
    try:
        return JobMessage.model_validate(raw)
    except ValidationError as exc:
        raise PoisonMessage(f"message does not match schema v{SCHEMA_VERSION}: {exc}") from exc
