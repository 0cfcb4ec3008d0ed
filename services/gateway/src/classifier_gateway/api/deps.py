"""The gateway's own dependencies (settings and store come from classifier_common.deps)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from classifier_common.broker import Publisher
from classifier_common.config import Settings
from classifier_common.deps import ClientIdDep, client_id_of, idempotency_key_of
from classifier_common.images import Gallery
from classifier_common.store import JobStore
from classifier_common.waiter import JobWaiter

__all__ = ["ClientIdDep", "GalleryDep", "PublisherDep", "SubmissionDep"]


@dataclass(frozen=True)
class SubmitParts:
    """What a submission uses, built once at start. A route takes it in one dependency with the
    request's client and Idempotency-Key (:class:`Submission`): FastAPI resolves each dependency
    of a route for every request, ~9 µs apiece (docs/performance.md, *Levers*)."""

    settings: Settings
    store: JobStore
    publisher: Publisher
    gallery: Gallery
    waiter: JobWaiter


@dataclass(frozen=True)
class Submission:
    """A submission's parts and who sends it: the client its API key names (checked before the
    body is read) and its Idempotency-Key."""

    parts: SubmitParts
    client_id: str
    idempotency_key: str | None


async def _submission(request: Request) -> Submission:
    parts: SubmitParts = request.app.state.submit_parts
    return Submission(parts, client_id_of(request, parts.settings), idempotency_key_of(request))


async def _publisher(request: Request) -> Publisher:
    return request.app.state.publisher


async def _gallery(request: Request) -> Gallery:
    return request.app.state.gallery


PublisherDep = Annotated[Publisher, Depends(_publisher)]
GalleryDep = Annotated[Gallery, Depends(_gallery)]
SubmissionDep = Annotated[Submission, Depends(_submission)]
