"""The gallery: GET /v1/images and GET /v1/images/{name}."""

from __future__ import annotations

import mimetypes

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel
from starlette.staticfiles import NotModifiedResponse

from classifier_common.errors import NotFound, UnknownImage
from classifier_common.web import ERROR_RESPONSE_SCHEMA
from classifier_gateway.api.deps import GalleryDep

router = APIRouter(prefix="/v1/images", tags=["images"])

# A browser keeps a photo but asks again each time whether it changed (ETag, 304): the gallery
# follows its directory, so a photo replaced under the same name is shown at the next look.
IMAGE_CACHE_CONTROL = "no-cache"


class ImageOut(BaseModel):
    name: str
    bytes: int
    width: int
    height: int
    url: str


@router.get("", summary="The gallery images")
def list_images(gallery: GalleryDep) -> list[ImageOut]:
    return [
        ImageOut(name=i.name, bytes=i.bytes, width=i.width, height=i.height, url=f"/v1/images/{i.name}")
        for i in gallery.list()
    ]


@router.get(
    "/{name}",
    summary="One gallery image",
    description="The photo, with an `ETag`: a request with `If-None-Match` naming it gets 304 while "
    "the file is unchanged.",
    response_class=FileResponse,
    responses={200: {"content": {"image/jpeg": {}}}, 304: {"description": "Unchanged"}, 404: ERROR_RESPONSE_SCHEMA},
)
def get_image(name: str, request: Request, gallery: GalleryDep) -> Response:
    try:
        path = gallery.path(name)
        stat = path.stat()
    except UnknownImage as exc:
        raise NotFound(exc.message, exc.details) from None
    except FileNotFoundError:
        raise NotFound(f"no gallery image named {name!r}", {"see": "/v1/images"}) from None  # removed just now
    media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    response = FileResponse(
        path, media_type=media_type, stat_result=stat, headers={"Cache-Control": IMAGE_CACHE_CONTROL}
    )
    etag = response.headers["etag"]
    asked = [tag.strip().removeprefix("W/") for tag in request.headers.get("if-none-match", "").split(",")]
    if etag in asked or "*" in asked:
        return NotModifiedResponse(response.headers)  # its ETag and Cache-Control
    return response
