"""POST /v1/jobs: a gallery image by name (JSON) or an uploaded file (multipart)."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException
from starlette.types import Message

from classifier_common import callbacks, images
from classifier_common.catalog import get_spec
from classifier_common.config import Settings
from classifier_common.deps import SettingsDep, StoreDep
from classifier_common.domain import Job, JobStatus, JobView, job_view, new_job_id, status_url, utcnow
from classifier_common.errors import InvalidInput, NotAnImage, PayloadTooLarge, Unauthorized, UnknownModel
from classifier_common.http import ERROR_RESPONSE_SCHEMA
from classifier_common.logging import request_id_var
from classifier_gateway.api.deps import GalleryDep, PublisherDep
from classifier_gateway.submission import submit

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

JSON_BODY_LIMIT = 64 * 1024
MULTIPART_OVERHEAD = 64 * 1024  # boundaries and the model field around the file
IDEMPOTENCY_KEY_MAX = 200


CALLBACK_DOC = (
    "Optional http(s) URL that receives the finished job by POST, signed with HMAC-SHA256 "
    "(X-Classifier-Signature: sha256=<hex>); only accepted when the server has a callback secret."
)


class JobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1, max_length=100, examples=["efficientnet_lite0"])
    image: str = Field(min_length=1, max_length=255, examples=["n01531178_goldfinch.JPEG"])
    callback_url: str | None = Field(default=None, max_length=callbacks.MAX_URL_LENGTH, description=CALLBACK_DOC)


_REQUEST_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": JobRequest.model_json_schema()},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file", "model"],
                "properties": {
                    "file": {"type": "string", "format": "binary", "description": "the image"},
                    "model": {"type": "string", "example": "efficientnet_lite0"},
                    "callback_url": {
                        "type": "string",
                        "maxLength": callbacks.MAX_URL_LENGTH,
                        "description": CALLBACK_DOC,
                    },
                },
            }
        },
    },
}


def _client_id(request: Request, settings: Settings) -> str:
    """Check the API key; the client it identifies (a digest of the key, never the key itself),
    "" when API keys are off."""
    if not settings.api_keys:
        return ""
    given = request.headers.get("x-api-key", "")
    auth = request.headers.get("authorization", "")
    if not given and auth.lower().startswith("bearer "):
        given = auth[7:].strip()
    if not any(hmac.compare_digest(given.encode(), key.encode()) for key in settings.api_keys):
        raise Unauthorized("a valid API key is required (X-API-Key header or Authorization: Bearer)")
    return hashlib.sha256(given.encode()).hexdigest()[:32]


def _limited(request: Request, limit: int) -> Request:
    """The same request, but reading more than ``limit`` body bytes raises 413 at once: an
    oversized upload is refused before it is held in memory."""
    received = 0
    receive = request.receive

    async def limited_receive() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise PayloadTooLarge(f"request body is larger than {limit} bytes", {"max_bytes": limit})
        return message

    return Request(request.scope, limited_receive)


async def _parse_json(request: Request) -> JobRequest:
    body = b""
    async for chunk in _limited(request, JSON_BODY_LIMIT).stream():
        body += chunk
    try:
        raw = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise InvalidInput("the body is not valid JSON: it is nested too deeply") from None
    try:
        return JobRequest.model_validate(raw)
    except ValidationError as exc:
        details = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        where = ".".join(str(p) for p in details[0]["loc"]) or "body"
        raise InvalidInput(f"{where}: {details[0]['msg']}", details) from None


def _callback_url(url: object, settings: Settings) -> str | None:
    if url is None:
        return None
    if not isinstance(url, str):
        raise InvalidInput("callback_url must be a string", {"field": "callback_url"})
    if settings.callback_secret is None:
        raise InvalidInput(
            "callback_url is not accepted here: the server has no callback secret to sign callbacks with",
            {"field": "callback_url"},
        )
    return callbacks.validate_url(url, allow_private=settings.callback_allow_private)


async def _parse_multipart(request: Request, max_bytes: int) -> tuple[str, str, bytes, object]:
    try:
        form = await _limited(request, max_bytes + MULTIPART_OVERHEAD).form(max_files=1, max_fields=5)
    except MultiPartException as exc:
        raise InvalidInput(f"malformed multipart body: {exc.message}") from None
    except StarletteHTTPException as exc:
        # Inside an app Starlette turns the parser's MultiPartException into a bare 400; the API
        # answers an invalid body with 422 like every other.
        raise InvalidInput(f"malformed multipart body: {exc.detail}") from None
    try:
        model = form.get("model")
        upload = form.get("file")
        if not isinstance(model, str) or not model:
            raise InvalidInput("the form needs a 'model' field", {"field": "model"})
        if not isinstance(upload, UploadFile):
            raise InvalidInput("the form needs a 'file' field with the image", {"field": "file"})
        data = await upload.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise PayloadTooLarge(f"the file is larger than {max_bytes} bytes", {"max_bytes": max_bytes})
        name = (upload.filename or "upload").replace("/", "_").replace("\\", "_")[:255]
        return model, name, data, form.get("callback_url")
    finally:
        await form.close()


@router.post(
    "",
    status_code=202,
    summary="Submit a classification job",
    description='JSON `{"model", "image"}` names a gallery image; multipart `file` + `model` uploads one. '
    "Answers 202 once the job is durably queued, with `Location` = its status URL.",
    response_model=JobView,
    openapi_extra={"requestBody": _REQUEST_BODY},
    responses={
        401: ERROR_RESPONSE_SCHEMA,
        413: ERROR_RESPONSE_SCHEMA,
        415: ERROR_RESPONSE_SCHEMA,
        422: ERROR_RESPONSE_SCHEMA,
        429: ERROR_RESPONSE_SCHEMA,
        503: ERROR_RESPONSE_SCHEMA,
    },
)
async def create_job(
    request: Request, settings: SettingsDep, store: StoreDep, publisher: PublisherDep, gallery: GalleryDep
) -> JSONResponse:
    client_id = _client_id(request, settings)
    idempotency_key = request.headers.get("idempotency-key") or None
    if idempotency_key is not None and len(idempotency_key) > IDEMPOTENCY_KEY_MAX:
        raise InvalidInput(f"Idempotency-Key is longer than {IDEMPOTENCY_KEY_MAX} characters")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > settings.max_upload_bytes + MULTIPART_OVERHEAD:
        raise PayloadTooLarge(
            f"request body is larger than {settings.max_upload_bytes} bytes", {"max_bytes": settings.max_upload_bytes}
        )
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    upload: bytes | None = None
    source: Literal["gallery", "upload"]
    callback: object  # the JSON body's str | None, or the multipart field as sent; _callback_url checks it
    if content_type == "application/json":
        req = await _parse_json(request)
        model_name, image_name, source, callback = req.model, req.image, "gallery", req.callback_url
    elif content_type == "multipart/form-data":
        model_name, image_name, upload, callback = await _parse_multipart(request, settings.max_upload_bytes)
        source = "upload"
    else:
        raise NotAnImage(
            f"unsupported content type {content_type or '(none)'!r}: send application/json or multipart/form-data",
            {"accepted": ["application/json", "multipart/form-data"]},
        )

    callback_url = _callback_url(callback, settings)
    spec = get_spec(model_name)
    if not spec.available(settings.models_dir):
        raise UnknownModel(f"model {model_name!r} is not available here (its weights are not installed)")
    request_id = request_id_var.get()

    def accept() -> tuple[Job, bool]:
        # Everything that blocks (reading the gallery file or decoding the upload to check it, the
        # store insert, the publish and its confirm) in one hand-off to a thread.
        if upload is not None:
            images.inspect(upload)
            digest = images.sha256(upload)
        else:
            digest = gallery.sha256(image_name)
        job = Job(
            id=new_job_id(),
            status=JobStatus.queued,
            model=spec.name,
            image=image_name,
            source=source,
            image_sha256=digest,
            created_at=utcnow(),
            request_id=request_id,
            idempotency_key=idempotency_key,
            client_id=client_id,
            callback_url=callback_url,
        )
        return submit(store, publisher, job, upload)

    job, created = await run_in_threadpool(accept)
    headers = {"Location": status_url(job.id)}
    if not created:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(job_view(job), status_code=202, headers=headers)
