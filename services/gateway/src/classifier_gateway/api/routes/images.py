"""The gallery: GET /v1/images and GET /v1/images/{name}."""

from __future__ import annotations

import mimetypes

from fastapi import APIRouter
from fastapi.responses import FileResponse
from pydantic import BaseModel

from classifier_common.errors import NotFound, UnknownImage
from classifier_common.web import ERROR_RESPONSE_SCHEMA
from classifier_gateway.api.deps import GalleryDep

router = APIRouter(prefix="/v1/images", tags=["images"])


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
    response_class=FileResponse,
    responses={200: {"content": {"image/jpeg": {}}}, 404: ERROR_RESPONSE_SCHEMA},
)
def get_image(name: str, gallery: GalleryDep) -> FileResponse:
    try:
        path = gallery.path(name)
    except UnknownImage as exc:
        raise NotFound(exc.message, exc.details) from None
    media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return FileResponse(path, media_type=media_type, headers={"Cache-Control": "public, max-age=86400"})
