"""Client.list_jobs (an iterator over pages), cancel and retry_job, and the async client's, against
the stalled server (jobs stay queued) and the one-process system."""

from __future__ import annotations

import asyncio

import pytest

from classifier_client import AsyncClient, Client
from classifier_client.errors import Conflict, NotFound
from tests.utils.server import Server

GOLDFINCH = "n01531178_goldfinch.JPEG"


def test_cancel_then_retry_links_the_two_jobs(stalled: Server) -> None:
    with Client(stalled.url) as client:
        job = client.submit(image=GOLDFINCH)
        assert client.cancel(job)["status"] == "canceled"
        retry = client.retry_job(job["id"])
        try:
            assert retry["retry_of"] == job["id"] and retry["status"] == "queued"
            assert client.get(job)["retried_by"] == retry["id"]
            with pytest.raises(Conflict) as refused:
                client.retry_job(job)
            assert refused.value.code == "already_retried"
            with pytest.raises(Conflict):
                client.retry_job(retry)  # queued: not retryable
            with pytest.raises(NotFound):
                client.retry_job("0" * 32)
        finally:
            client.cancel(retry)  # the stalled queue is short: each message stays in it
        # Pages of one job: newest first, neither repeating nor skipping.
        listed = [j["id"] for j in client.list_jobs(status="canceled", page_size=1)]
        assert listed[:2] == [retry["id"], job["id"]] and len(listed) == len(set(listed))
        assert [j["id"] for j in client.list_jobs(status=["failed", "canceled"], model="efficientnet_lite0")][:2] == [
            retry["id"],
            job["id"],
        ]
        assert list(client.list_jobs(model="no_such_model")) == []


def test_async_client_lists_and_retries(stalled: Server) -> None:
    async def go() -> tuple[list[str], dict]:
        async with AsyncClient(stalled.url) as client:
            job = await client.submit(image=GOLDFINCH)
            await client.cancel(job)
            retry = await client.retry_job(job)
            await client.cancel(retry)
            listed = [j["id"] async for j in client.list_jobs(status="canceled", page_size=1)]
            return listed, retry

    listed, retry = asyncio.run(go())
    assert listed[0] == retry["id"] and listed[1] == retry["retry_of"]
