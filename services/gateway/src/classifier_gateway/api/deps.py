"""The gateway's own dependencies (settings and store come from classifier_common.deps)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from classifier_common.broker import Publisher
from classifier_common.config import Settings
from classifier_common.deps import ClientIdDep
from classifier_common.images import Gallery
from classifier_common.store import JobStore
from classifier_common.waiter import JobWaiter

__all__ = ["ClientIdDep", "GalleryDep", "PublisherDep", "SubmitPartsDep"]


@dataclass(frozen=True)
class SubmitParts:
    """What a submission uses, as one dependency: FastAPI resolves each dependency of a route for
    every request, ~9 µs apiece (docs/performance.md, *Levers*)."""

    settings: Settings
    store: JobStore
    publisher: Publisher
    gallery: Gallery
    waiter: JobWaiter


async def _submit_parts(request: Request) -> SubmitParts:
    return request.app.state.submit_parts


async def _publisher(request: Request) -> Publisher:
    return request.app.state.publisher


async def _gallery(request: Request) -> Gallery:
    return request.app.state.gallery


PublisherDep = Annotated[Publisher, Depends(_publisher)]
GalleryDep = Annotated[Gallery, Depends(_gallery)]
SubmitPartsDep = Annotated[SubmitParts, Depends(_submit_parts)]
