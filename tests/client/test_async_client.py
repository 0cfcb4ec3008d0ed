"""classifier_client.AsyncClient: the same calls under asyncio, against the real one-process system."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from classifier_client import AsyncClient, NotFound, WaitTimeout
from tests.utils.server import Server

GOLDFINCH = "n01531178_goldfinch.JPEG"
ORANGE = "n07747607_orange.JPEG"


def test_submit_wait_get_and_models(server: Server) -> None:
    async def scenario() -> None:
        async with AsyncClient(server.url) as client:
            assert await client.models() == httpx.get(f"{server.url}/v1/models").json()
            job = await client.submit(image=GOLDFINCH)
            updates: list[str] = []
            done = await client.wait(job, timeout=60, on_update=lambda latest: updates.append(latest["status"]))
            assert done["status"] == "succeeded" and updates[-1] == "succeeded"
            assert await client.get(job["id"]) == done
            with pytest.raises(NotFound):
                await client.get("0123456789abcdef0123456789abcdef")

    asyncio.run(scenario())


def test_submit_many_yields_as_jobs_finish(server: Server) -> None:
    async def scenario() -> list[str]:
        async with AsyncClient(server.url) as client:
            return [outcome.item async for outcome in client.submit_many(images=[GOLDFINCH, ORANGE], timeout=60)]

    assert sorted(asyncio.run(scenario())) == [GOLDFINCH, ORANGE]


def test_cancel_and_wait_timeout(stalled: Server) -> None:
    async def scenario() -> None:
        async with AsyncClient(stalled.url) as client:
            job = await client.submit(image=ORANGE)
            with pytest.raises(WaitTimeout):
                await client.wait(job, timeout=0.5)
            assert (await client.cancel(job))["status"] == "canceled"

    asyncio.run(scenario())
