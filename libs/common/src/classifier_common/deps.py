"""FastAPI dependencies every service uses, as ``Annotated`` aliases. Services keep what they
build at start-up on ``app.state`` (``settings``, ``store``).

The dependencies are ``async``: FastAPI runs a plain ``def`` dependency in its thread pool, a
hand-off that cost more than the whole lookup (measured ~0.2 ms each, docs/performance.md)."""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from fastapi import Depends, Request

from classifier_common.config import Settings
from classifier_common.domain import Job
from classifier_common.errors import InvalidInput, Unauthorized
from classifier_common.store import JobStore


async def _settings(request: Request) -> Settings:
    return request.app.state.settings


async def _store(request: Request) -> JobStore:
    return request.app.state.store


SettingsDep = Annotated[Settings, Depends(_settings)]
StoreDep = Annotated[JobStore, Depends(_store)]


async def _client_id(request: Request, settings: SettingsDep) -> str:
    return client_id_of(request, settings)


def client_id_of(request: Request, settings: Settings) -> str:
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
    return client_digest(given)


IDEMPOTENCY_KEY_MAX = 200


async def _idempotency_key(request: Request) -> str | None:
    return idempotency_key_of(request)


def idempotency_key_of(request: Request) -> str | None:
    """The request's Idempotency-Key header (None without one), at most IDEMPOTENCY_KEY_MAX long."""
    key = request.headers.get("idempotency-key") or None
    if key is not None and len(key) > IDEMPOTENCY_KEY_MAX:
        raise InvalidInput(f"Idempotency-Key is longer than {IDEMPOTENCY_KEY_MAX} characters")
    return key


def client_digest(api_key: str) -> str:
    """The client an API key identifies, as jobs record it (``Job.client_id``)."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:32]


def owns(client_id: str, job: Job) -> bool:
    """Whether the client may see the job: with API keys off (client "") every job is everyone's;
    with keys on, a job is its submitter's only (anyone else gets 404, as if it did not exist)."""
    return not client_id or job.client_id == client_id


# Checks the API key before the body is read; the client it names owns the jobs it submits and
# scopes its Idempotency-Keys.
ClientIdDep = Annotated[str, Depends(_client_id)]
# Submissions (a job, a batch, a retry) made again with the same key answer what the first made.
IdempotencyKeyDep = Annotated[str | None, Depends(_idempotency_key)]
