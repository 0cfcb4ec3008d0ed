"""GET /v1/info: the names of the models and images (the shape the original demo API documented),
and what an upload must be, so that a client can check a file before sending it."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from classifier_common.catalog import CATALOG
from classifier_common.deps import SettingsDep
from classifier_common.images import ACCEPTED_FORMATS, ACCEPTED_MEDIA_TYPES
from classifier_gateway.api.deps import GalleryDep

router = APIRouter(prefix="/v1/info", tags=["info"])


class InfoOut(BaseModel):
    models: list[str] = Field(description="Models whose weights are installed here.")
    images: list[str] = Field(description="The gallery's image names.")
    max_upload_bytes: int = Field(description="The largest image file accepted; a larger one is refused with 413.")
    accepted_formats: list[str] = Field(description="Image formats accepted; another is refused with 415.")
    accepted_media_types: list[str] = Field(description="The media types of those formats.")
    batch_max_items: int = Field(description="The most items one POST /v1/batches takes; more are refused with 422.")
    batch_max_bytes: int = Field(description="The most upload bytes one POST /v1/batches takes in all (413 beyond).")


@router.get("", summary="Model and image names, upload limits")
def info(settings: SettingsDep, gallery: GalleryDep) -> InfoOut:
    return InfoOut(
        models=[spec.name for spec in CATALOG.values() if spec.available(settings.models_dir)],
        images=[image.name for image in gallery.list()],
        max_upload_bytes=settings.max_upload_bytes,
        accepted_formats=sorted(ACCEPTED_FORMATS),
        accepted_media_types=sorted(ACCEPTED_MEDIA_TYPES),
        batch_max_items=settings.batch_max_items,
        batch_max_bytes=settings.batch_max_bytes,
    )
