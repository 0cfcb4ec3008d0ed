"""The queue message (classifier_common.messages): v2 carries an upload's raw bytes after one JSON
line; v3 a reference to an upload kept in the job store; v1 (base64 inside the JSON) is still
read; anything else is a poison message."""

from __future__ import annotations

import base64
import json

import pytest

from classifier_common.domain import Job
from classifier_common.errors import PoisonMessage
from classifier_common.messages import INLINE_VERSION, SCHEMA_VERSION, JobMessage, decode
from tests.utils.jobs import queued_job

# Bytes that contain newlines and every byte value: the framing must not care.
UPLOAD = bytes(range(256)) * 3 + b"\n\n\r\n"


def _job(source: str) -> Job:
    return queued_job(
        image="photo.jpg" if source == "upload" else "n01531178_goldfinch.JPEG", source=source, request_id="req-1"
    )


def test_an_upload_travels_raw_after_one_json_line() -> None:
    job = _job("upload")
    body = JobMessage.for_job(job, UPLOAD).encode()
    header, _, rest = body.partition(b"\n")
    assert rest == UPLOAD
    assert json.loads(header)["v"] == INLINE_VERSION == 2  # every worker since v2 reads it
    assert "image_b64" not in json.loads(header)
    message = decode(body)
    assert message.upload_bytes() == UPLOAD
    assert (message.job_id, message.source, message.request_id) == (job.id, "upload", "req-1")


def test_a_gallery_job_is_one_json_line() -> None:
    body = JobMessage.for_job(_job("gallery")).encode()
    assert b"\n" not in body
    message = decode(body)
    assert message.upload_bytes() is None and message.image == "n01531178_goldfinch.JPEG"


def test_a_stored_upload_travels_as_a_reference_in_one_json_line() -> None:
    job = _job("upload")
    body = JobMessage.for_job(job, upload_ref=job.id).encode()
    assert b"\n" not in body and len(body) < 512
    assert json.loads(body)["v"] == SCHEMA_VERSION == 3
    message = decode(body)
    assert (message.upload_ref, message.upload_bytes(), message.source) == (job.id, None, "upload")


def test_an_upload_is_inline_or_stored_never_both() -> None:
    job = _job("upload")
    with pytest.raises(ValueError, match="either inline or by reference"):
        JobMessage.for_job(job, UPLOAD, upload_ref=job.id)


def test_a_v1_message_from_an_older_gateway_is_still_read() -> None:
    job = _job("upload")
    header = json.loads(JobMessage.for_job(job).encode())
    v1 = {**header, "v": 1, "image_b64": base64.b64encode(UPLOAD).decode()}
    message = decode(json.dumps(v1).encode())
    assert message.upload_bytes() == UPLOAD and message.job_id == job.id


def _header(**changes: object) -> bytes:
    return json.dumps({**json.loads(JobMessage.for_job(_job("upload")).encode()), **changes}).encode()


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"not json\n" + UPLOAD, "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (_header(v=99) + b"\n" + UPLOAD, "unknown message schema version 99"),
        (_header(job_id=5) + b"\n" + UPLOAD, "does not match schema v2"),
        (_header(), "a upload message without image bytes"),
        (_header(source="gallery") + b"\n" + UPLOAD, "a gallery message with image bytes"),
        (_header(v=1, image_b64="%%% not base64"), "image_b64 is not base64"),
        (_header(v=1, image_b64=base64.b64encode(UPLOAD).decode()) + b"\n" + UPLOAD, "one JSON part only"),
        (_header(v=2, upload_ref="abc"), "a v2 message has upload_ref"),
        (_header(v=3, upload_ref="abc") + b"\n" + UPLOAD, "a v3 message with image bytes has upload_ref"),
        (_header(v=3, upload_ref="abc", source="gallery"), "a gallery message with image bytes"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),  # RecursionError in the parser
        (b'{"v": 2, "job_id": ' + b'{"a": ' * 50_000 + b"1" + b"}" * 50_001, "nested too deeply"),
    ],
    ids=[
        "not-json",
        "not-object",
        "unknown-version",
        "wrong-type",
        "upload-no-bytes",
        "gallery-bytes",
        "v1-bad-b64",
        "v1-two-parts",
        "v2-reference",
        "v3-reference-and-bytes",
        "gallery-reference",
        "nested-array",
        "nested-object",
    ],
)
def test_malformed_messages_are_poison(body: bytes, why: str) -> None:
    with pytest.raises(PoisonMessage, match=why):
        decode(body)
