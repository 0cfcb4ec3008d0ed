"""The gateway's own dependencies (settings and store come from classifier_common.deps)."""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from fastapi import Depends, Request

from classifier_common.broker import Publisher
from classifier_common.deps import SettingsDep
from classifier_common.errors import Unauthorized
from classifier_common.images import Gallery


async def _publisher(request: Request) -> Publisher:
    return request.app.state.publisher


async def _gallery(request: Request) -> Gallery:
    return request.app.state.gallery


async def _client_id(request: Request, settings: SettingsDep) -> str:
    """Check the API key; the client it identifies (a digest of the key, never the key itself),
    "" when API keys are off."""
    if not settings.api_keys:
        return ""
    given = request.headers.get("x-api-key", "")
    auth = request.headers.get("authorization", "")
    if not given and auth.lower().startswith("bearer "):
        given = auth[7:].strip()
    if not any(hmac.compare_digest(given.encode(), key.encode()) for key in settings.api_keys):
        raise Unauthorized("a valid API key is required (X-API-Key header or Authorization: Bearer)")
    return hashlib.sha256(given.encode()).hexdigest()[:32]


PublisherDep = Annotated[Publisher, Depends(_publisher)]
GalleryDep = Annotated[Gallery, Depends(_gallery)]
# Checks the API key before the body is read; the client it names scopes Idempotency-Keys.
ClientIdDep = Annotated[str, Depends(_client_id)]
