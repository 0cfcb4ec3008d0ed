"""The queue message: what the gateway publishes and a worker consumes.

Schema v2: one line of JSON (the job's fields, ``v`` the schema version), then, for an upload, a
newline and the upload's raw bytes. A gallery image travels by name, with no second part. The
bytes are not base64 inside the JSON, so neither side encodes or decodes 4/3 of the upload
(~0.8 ms of CPU per 115 KB photo, docs/performance.md) and the broker stores 25 % less.
Schema v3 adds the claim check: an upload above ``CLASSIFIER_CLAIM_CHECK_BYTES`` is kept in the job
store (``JobStore.put_upload``) and the message carries ``upload_ref``, the key to read it back
with, and no second part. Only such a message is written as v3; every other is still written as
v2, so workers that predate v3 read all but the stored uploads during a rolling upgrade (upgrade
the workers first).
A v1 message (an upload base64-encoded in ``image_b64``), as gateways before v2 published it, is
still read, so jobs queued across an upgrade run. A message whose version a worker does not know,
or that is not of this shape, is a :class:`PoisonMessage` and goes to the dead-letter queue.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime

from pydantic import BaseModel, PrivateAttr, ValidationError

from classifier_common.domain import Job
from classifier_common.errors import PoisonMessage

SCHEMA_VERSION = 3
INLINE_VERSION = 2  # what a message without upload_ref is written as
READABLE_VERSIONS = (1, 2, 3)


class JobMessage(BaseModel):
    v: int = SCHEMA_VERSION
    job_id: str
    model: str
    image: str  # gallery name, or the upload's file name
    source: str  # "gallery" | "upload"
    image_sha256: str
    request_id: str | None = None
    enqueued_at: datetime
    upload_ref: str | None = None  # v3: the upload is in the job store under this key
    _upload: bytes | None = PrivateAttr(default=None)

    @classmethod
    def for_job(cls, job: Job, upload: bytes | None = None, *, upload_ref: str | None = None) -> JobMessage:
        """The message for ``job``: an upload travels inline as ``upload``, or stored in the job
        store under ``upload_ref`` (never both)."""
        if upload is not None and upload_ref is not None:
            raise ValueError("an upload travels either inline or by reference")
        message = cls(
            v=INLINE_VERSION if upload_ref is None else SCHEMA_VERSION,
            upload_ref=upload_ref,
            job_id=job.id,
            model=job.model,
            image=job.image,
            source=job.source,
            image_sha256=job.image_sha256,
            request_id=job.request_id,
            enqueued_at=job.created_at,
        )
        message._upload = upload
        return message

    def upload_bytes(self) -> bytes | None:
        """The upload that came inline; None for a gallery image or a stored upload."""
        return self._upload

    def encode(self) -> bytes:
        header = self.model_dump_json(exclude_none=True).encode()  # compact JSON: never a raw newline
        return header if self._upload is None else header + b"\n" + self._upload


def decode(body: bytes) -> JobMessage:
    header, newline, upload = body.partition(b"\n")
    try:
        raw = json.loads(header)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PoisonMessage(f"message body is not JSON: {exc}") from exc
    except RecursionError:  # arrays or objects nested deeper than the interpreter's stack
        raise PoisonMessage("message body is JSON nested too deeply") from None
    if not isinstance(raw, dict):
        raise PoisonMessage("message body is not a JSON object")
    version = raw.get("v")
    if version not in READABLE_VERSIONS:
        raise PoisonMessage(f"unknown message schema version {version!r}")
    encoded = raw.pop("image_b64", None) if version == 1 else None
    try:
        message = JobMessage.model_validate(raw)
    except ValidationError as exc:
        raise PoisonMessage(f"message does not match schema v{version}: {exc}") from exc
    if message.upload_ref is not None and (version < 3 or newline):
        raise PoisonMessage(f"a v{version} message {'with image bytes ' if newline else ''}has upload_ref")
    if version == 1:
        if newline:
            raise PoisonMessage("a v1 message has one JSON part only")
        try:
            message._upload = None if encoded is None else base64.b64decode(encoded, validate=True)
        except (binascii.Error, TypeError) as exc:
            raise PoisonMessage(f"image_b64 is not base64: {exc}") from exc
    else:
        message._upload = upload if newline else None
    has_upload = message._upload is not None or message.upload_ref is not None
    if has_upload != (message.source == "upload"):
        raise PoisonMessage(f"a {message.source} message {'with' if has_upload else 'without'} image bytes")
    return message
