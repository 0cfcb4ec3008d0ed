"""FastAPI dependencies every service uses, as ``Annotated`` aliases. Services keep what they
build at start-up on ``app.state`` (``settings``, ``store``).

The dependencies are ``async``: FastAPI runs a plain ``def`` dependency in its thread pool, a
hand-off that cost more than the whole lookup (measured ~0.2 ms each, docs/performance.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from classifier_common.config import Settings
from classifier_common.store import JobStore


async def _settings(request: Request) -> Settings:
    return request.app.state.settings


async def _store(request: Request) -> JobStore:
    return request.app.state.store


SettingsDep = Annotated[Settings, Depends(_settings)]
StoreDep = Annotated[JobStore, Depends(_store)]
