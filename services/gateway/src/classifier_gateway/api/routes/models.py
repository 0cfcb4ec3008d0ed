"""GET /v1/models: what can be asked for, which worker pool serves it, and whether a worker has it
loaded."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from fastapi import APIRouter
from pydantic import BaseModel

from classifier_common.catalog import CATALOG, ModelSpec, get_spec
from classifier_common.config import Settings
from classifier_common.deps import SettingsDep, StoreDep
from classifier_common.domain import utcnow
from classifier_common.errors import StoreUnavailable, UnknownModel
from classifier_common.submission import serving_pool

router = APIRouter(prefix="/v1/models", tags=["models"])


class ModelOut(BaseModel):
    name: str
    architecture: str
    input_size: int
    num_classes: int
    available: bool  # weights are in the models directory
    loaded: bool  # a running worker has loaded it
    pool: str | None  # the worker pool serving it; None: no pool does (a job for it is refused, 422)
    pool_ready: bool  # a worker of that pool sent a heartbeat lately


# How long a submission relies on the last look for a model's weights. Looking is a stat() of
# the file, a system call during which the event loop lets go of the GIL (and must then wait to
# get it back); once a second per model instead of once per submission. Weights seeded while the
# gateway runs are accepted within this.
WEIGHTS_LOOK_S = 1.0
_weights_seen: dict[tuple[Path, str], tuple[float, bool]] = {}  # by (models dir, model): (when, present)


def _weights_present(spec: ModelSpec, models_dir: Path) -> bool:
    key, now = (models_dir, spec.name), time.monotonic()
    seen = _weights_seen.get(key)
    if seen is not None and now - seen[0] < WEIGHTS_LOOK_S:
        return seen[1]
    present = spec.available(models_dir)
    _weights_seen[key] = (now, present)
    return present


def model_and_pool(settings: Settings, model_name: str) -> tuple[ModelSpec, str]:
    """The model a submission asks for and the worker pool whose queue its job goes to; refused
    (422) when unknown, without weights here, or served by no pool."""
    spec = get_spec(model_name)
    if not _weights_present(spec, settings.models_dir):
        raise UnknownModel(f"model {model_name!r} is not available here (its weights are not installed)")
    return spec, serving_pool(settings, spec.name)


def live_worker_models(settings: Settings, store: StoreDep) -> list[Sequence[str]]:
    """The models of each worker that sent a heartbeat lately (in any topology)."""
    since = utcnow() - timedelta(seconds=3 * settings.heartbeat_s)
    try:
        return [worker.models for worker in store.live_workers(since)]
    except StoreUnavailable:
        return []


def ready_pools(settings: Settings, workers: list[Sequence[str]]) -> set[str]:
    """The pools with a live worker. A worker serves exactly its pool's models and a model is in
    one pool only, so any model a worker has loaded names its pool; the implicit pool without a
    model list is ready with any live worker."""
    ready: set[str] = set()
    for pool, models in settings.pools.items():
        if any(not models or set(models) & set(loaded) for loaded in workers):
            ready.add(pool)
    return ready


@router.get("", summary="The models, their input size, the pool serving each and whether they are loaded")
def list_models(settings: SettingsDep, store: StoreDep) -> list[ModelOut]:
    workers = live_worker_models(settings, store)
    loaded = {model for models in workers for model in models}
    ready = ready_pools(settings, workers)
    pools = {spec.name: settings.pool_for_model(spec.name) for spec in CATALOG.values()}
    return [
        ModelOut(
            name=spec.name,
            architecture=spec.architecture,
            input_size=spec.input_size,
            num_classes=spec.num_classes,
            available=spec.available(settings.models_dir),
            loaded=spec.name in loaded,
            pool=pools[spec.name],
            pool_ready=pools[spec.name] in ready,
        )
        for spec in CATALOG.values()
    ]
