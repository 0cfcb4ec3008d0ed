"""The body of POST /v1/jobs: read within a byte limit, parsed from JSON or multipart, and
described for the OpenAPI document (the route takes either, so FastAPI cannot infer it)."""

from __future__ import annotations

import json

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException
from starlette.types import Message

from classifier_common import callbacks
from classifier_common.config import Settings
from classifier_common.errors import InvalidInput, PayloadTooLarge

JSON_BODY_LIMIT = 64 * 1024
MULTIPART_OVERHEAD = 64 * 1024  # boundaries and the model field around the file


CALLBACK_DOC = (
    "Optional http(s) URL that receives the finished job by POST, signed with HMAC-SHA256 "
    "(X-Classifier-Signature: sha256=<hex>); only accepted when the server has a callback secret."
)


class JobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1, max_length=100, examples=["efficientnet_lite0"])
    image: str = Field(min_length=1, max_length=255, examples=["n01531178_goldfinch.JPEG"])
    callback_url: str | None = Field(default=None, max_length=callbacks.MAX_URL_LENGTH, description=CALLBACK_DOC)


REQUEST_BODY = {
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


def limited(request: Request, limit: int) -> Request:
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


async def parse_json(request: Request) -> JobRequest:
    body = b""
    async for chunk in limited(request, JSON_BODY_LIMIT).stream():
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


def callback_url(url: object, settings: Settings) -> str | None:
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


async def parse_multipart(request: Request, max_bytes: int) -> tuple[str, str, bytes, object]:
    try:
        form = await limited(request, max_bytes + MULTIPART_OVERHEAD).form(max_files=1, max_fields=5)
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
