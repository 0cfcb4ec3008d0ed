"""GET /v1/info: the names of the models and images, the shape the original demo API documented."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from classifier_common.catalog import CATALOG
from classifier_common.deps import SettingsDep
from classifier_gateway.api.deps import GalleryDep

router = APIRouter(prefix="/v1/info", tags=["info"])


class InfoOut(BaseModel):
    models: list[str]
    images: list[str]


@router.get("", summary="Model and image names")
def info(settings: SettingsDep, gallery: GalleryDep) -> InfoOut:
    return InfoOut(
        models=[spec.name for spec in CATALOG.values() if spec.available(settings.models_dir)],
        images=[image.name for image in gallery.list()],
    )
