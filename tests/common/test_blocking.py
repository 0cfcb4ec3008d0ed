"""classifier_common.blocking.in_thread: a blocking call awaited from the event loop, in a thread,
with the caller's context, and never outliving a canceled caller."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time

import pytest

from classifier_common.blocking import in_thread
from classifier_common.logs import request_id_var


def test_the_call_runs_in_another_thread_and_its_result_comes_back() -> None:
    async def scenario() -> tuple[int, int]:
        return await in_thread(lambda a, b: (a + b, threading.get_ident()), 2, 3)

    total, ident = asyncio.run(scenario())
    assert total == 5 and ident != threading.get_ident()


def test_what_the_call_raises_reaches_the_caller() -> None:
    def fail() -> None:
        raise KeyError("gone")

    with pytest.raises(KeyError, match="gone"):
        asyncio.run(in_thread(fail))


def test_the_call_sees_the_callers_context() -> None:
    """The request id set for a request reaches the log lines its blocking calls write."""

    async def scenario() -> str | None:
        request_id_var.set("req-123")
        return await in_thread(request_id_var.get)

    assert asyncio.run(scenario()) == "req-123"
    assert contextvars.copy_context().get(request_id_var) is None  # the caller's own, not leaked here


def test_a_canceled_caller_waits_for_the_call_it_started() -> None:
    finished = threading.Event()

    def slow() -> None:
        time.sleep(0.3)
        finished.set()

    async def scenario() -> bool:
        task = asyncio.ensure_future(in_thread(slow))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return finished.is_set()

    assert asyncio.run(scenario()), "the canceled caller returned while its call still ran"
