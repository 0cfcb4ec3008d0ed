"""The gateway's own dependencies (settings and store come from classifier_common.deps)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from classifier_common.broker import Publisher
from classifier_common.deps import ClientIdDep
from classifier_common.images import Gallery

__all__ = ["ClientIdDep", "GalleryDep", "PublisherDep"]


async def _publisher(request: Request) -> Publisher:
    return request.app.state.publisher


async def _gallery(request: Request) -> Gallery:
    return request.app.state.gallery


PublisherDep = Annotated[Publisher, Depends(_publisher)]
GalleryDep = Annotated[Gallery, Depends(_gallery)]
