"""The body of POST /v1/batches: JSON naming gallery images, or multipart with many ``file``
parts and/or ``image`` fields; read within the batch's byte limit, and described for the OpenAPI
document."""

from __future__ import annotations

import json
from dataclasses import dataclass

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException

from classifier_common import callbacks
from classifier_common.errors import InvalidInput, TooManyItems
from classifier_gateway.api.body import CALLBACK_DOC, JSON_BODY_LIMIT, MULTIPART_OVERHEAD, limited
from classifier_gateway.batch_submission import Item

# Boundaries and headers of each part; the whole body is bounded by batch_max_bytes plus this.
OVERHEAD_PER_ITEM = 1024


class BatchJsonRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1, max_length=100, examples=["efficientnet_lite0"])
    images: list[str] = Field(min_length=1, examples=[["n01531178_goldfinch.JPEG", "n07747607_orange.JPEG"]])
    callback_url: str | None = Field(default=None, max_length=callbacks.MAX_URL_LENGTH, description=CALLBACK_DOC)


@dataclass(frozen=True)
class ParsedBatch:
    model: str
    items: list[Item]
    callback: object  # as sent; body.callback_url checks it


def body_limit(max_items: int, max_bytes: int) -> int:
    return max_bytes + MULTIPART_OVERHEAD + max_items * OVERHEAD_PER_ITEM


def _count(items: int, max_items: int) -> None:
    if items == 0:
        raise TooManyItems("the batch has no items: send `file` parts and/or `image` names", {"max_items": max_items})
    if items > max_items:
        raise TooManyItems(
            f"the batch has more than {max_items} items; send at most {max_items} per request",
            {"max_items": max_items},
        )


async def parse_json(request: Request, max_items: int) -> ParsedBatch:
    body = b""
    async for chunk in limited(request, JSON_BODY_LIMIT).stream():
        body += chunk
    try:
        raw = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidInput(f"the body is not valid JSON: {exc}") from None
    if isinstance(raw, dict) and isinstance(raw.get("images"), list):
        _count(len(raw["images"]), max_items)
    try:
        req = BatchJsonRequest.model_validate(raw)
    except ValidationError as exc:
        details = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        where = ".".join(str(p) for p in details[0]["loc"]) or "body"
        raise InvalidInput(f"{where}: {details[0]['msg']}", details) from None
    items = [Item(image=name, source="gallery") for name in req.images]
    return ParsedBatch(req.model, items, req.callback_url)


async def parse_multipart(request: Request, max_items: int, max_bytes: int, max_upload_bytes: int) -> ParsedBatch:
    """Every ``file`` part and ``image`` field, in the order sent. A file larger than
    ``max_upload_bytes`` is kept as its name and size only (that item is refused, not the batch);
    the body as a whole is bounded by ``max_bytes`` (413)."""
    try:
        form = await limited(request, body_limit(max_items, max_bytes)).form(
            max_files=max_items + 1, max_fields=max_items + 3
        )
    except (MultiPartException, StarletteHTTPException) as exc:
        message = exc.message if isinstance(exc, MultiPartException) else str(exc.detail)
        if message.startswith("Too many"):
            _count(max_items + 1, max_items)
        raise InvalidInput(f"malformed multipart body: {message}") from None
    try:
        model = form.get("model")
        if not isinstance(model, str) or not model:
            raise InvalidInput("the form needs a 'model' field", {"field": "model"})
        unknown = sorted(set(form.keys()) - {"model", "file", "image", "callback_url"})
        if unknown:
            raise InvalidInput(f"unknown form field {unknown[0]!r}: send `file` parts and/or `image` names")
        items: list[Item] = []
        for key, value in form.multi_items():
            if key == "image":
                if not isinstance(value, str) or not value or len(value) > 255:
                    raise InvalidInput("each 'image' field is a gallery image name (1 to 255 characters)")
                items.append(Item(image=value, source="gallery"))
            elif key == "file":
                if not isinstance(value, UploadFile):
                    raise InvalidInput("each 'file' part must be a file upload", {"field": "file"})
                data = await value.read(max_upload_bytes + 1)
                name = (value.filename or "upload").replace("/", "_").replace("\\", "_")[:255]
                if len(data) > max_upload_bytes:
                    size = value.size if value.size is not None else len(data)
                    items.append(Item(image=name, source="upload", data=None, size=size))
                else:
                    items.append(Item(image=name, source="upload", data=data, size=len(data)))
        _count(len(items), max_items)
        return ParsedBatch(model, items, form.get("callback_url"))
    finally:
        await form.close()


REQUEST_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["model"],
                "properties": {
                    "model": {"type": "string", "example": "efficientnet_lite0"},
                    "file": {
                        "type": "array",
                        "items": {"type": "string", "format": "binary"},
                        "description": "images to upload: one `file` part each",
                    },
                    "image": {
                        "type": "array",
                        "items": {"type": "string"},
                        "description": "gallery image names: one `image` field each",
                    },
                    "callback_url": {
                        "type": "string",
                        "maxLength": callbacks.MAX_URL_LENGTH,
                        "description": CALLBACK_DOC + " Sent for each item's job.",
                    },
                },
            },
            "encoding": {"file": {"style": "form", "explode": True}, "image": {"style": "form", "explode": True}},
        },
        "application/json": {
            "schema": BatchJsonRequest.model_json_schema(),
            "examples": {
                "gallery": {
                    "summary": "Two gallery images",
                    "value": {
                        "model": "efficientnet_lite0",
                        "images": ["n01531178_goldfinch.JPEG", "n07747607_orange.JPEG"],
                    },
                }
            },
        },
    },
}
