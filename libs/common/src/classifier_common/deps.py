"""FastAPI dependencies every service uses, as ``Annotated`` aliases. Services keep what they
build at start-up on ``app.state`` (``settings``, ``store``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from classifier_common.config import Settings
from classifier_common.store import JobStore


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _store(request: Request) -> JobStore:
    return request.app.state.store


SettingsDep = Annotated[Settings, Depends(_settings)]
StoreDep = Annotated[JobStore, Depends(_store)]
