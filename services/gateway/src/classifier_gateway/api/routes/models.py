"""GET /v1/models: what can be asked for, and whether a worker has it loaded."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter
from pydantic import BaseModel

from classifier_common.catalog import CATALOG
from classifier_common.deps import SettingsDep, StoreDep
from classifier_common.domain import utcnow
from classifier_common.errors import StoreUnavailable

router = APIRouter(prefix="/v1/models", tags=["models"])


class ModelOut(BaseModel):
    name: str
    architecture: str
    input_size: int
    num_classes: int
    available: bool  # weights are in the models directory
    loaded: bool  # a running worker has loaded it


def loaded_models(settings: SettingsDep, store: StoreDep) -> set[str]:
    """The models of the workers that sent a heartbeat lately (in any topology)."""
    since = utcnow() - timedelta(seconds=3 * settings.heartbeat_s)
    try:
        return {model for worker in store.live_workers(since) for model in worker.models}
    except StoreUnavailable:
        return set()


@router.get("", summary="The models, their input size and whether they are loaded")
def list_models(settings: SettingsDep, store: StoreDep) -> list[ModelOut]:
    loaded = loaded_models(settings, store)
    return [
        ModelOut(
            name=spec.name,
            architecture=spec.architecture,
            input_size=spec.input_size,
            num_classes=spec.num_classes,
            available=spec.available(settings.models_dir),
            loaded=spec.name in loaded,
        )
        for spec in CATALOG.values()
    ]
