"""classifier_common.blocking: ``in_thread``, a blocking call awaited from the event loop, in a
thread, with the caller's context, and never outliving a canceled caller; ``awaitable``, a future
settled elsewhere awaited on the loop, with no wake-up of the loop when it settles there."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from concurrent.futures import Future

import pytest

from classifier_common.blocking import awaitable, in_thread
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


class CountingLoop(asyncio.SelectorEventLoop):
    """The standard loop, counting its wake-ups from other threads (``call_soon_threadsafe``)."""

    threadsafe_calls = 0

    def call_soon_threadsafe(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        self.threadsafe_calls += 1
        return super().call_soon_threadsafe(*args, **kwargs)


def run_counting(scenario):  # noqa: ANN001, ANN201
    loop = CountingLoop()
    try:
        return loop.run_until_complete(scenario()), loop.threadsafe_calls
    finally:
        loop.close()


def test_a_future_settled_on_the_loops_thread_is_awaited_without_waking_the_loop() -> None:
    async def scenario() -> str:
        future: Future[str] = Future()
        waiting = awaitable(future)
        asyncio.get_running_loop().call_later(0.01, future.set_result, "confirmed")  # on the loop's thread
        return await waiting

    assert run_counting(scenario) == ("confirmed", 0)


def test_a_future_settled_on_another_thread_wakes_the_loop_once() -> None:
    async def scenario() -> str:
        future: Future[str] = Future()
        threading.Timer(0.01, future.set_result, args=("confirmed",)).start()
        return await awaitable(future)

    assert run_counting(scenario) == ("confirmed", 1)


def test_an_awaited_futures_error_reaches_the_awaiting_coroutine_from_either_thread() -> None:
    async def scenario() -> list[str]:
        here: Future[None] = Future()
        there: Future[None] = Future()
        here.set_exception(KeyError("here"))  # settled before it is awaited
        threading.Timer(0.01, there.set_exception, args=(KeyError("there"),)).start()
        errors = []
        for future in (here, there):
            try:
                await awaitable(future)
            except KeyError as exc:
                errors.append(exc.args[0])
        return errors

    assert run_counting(scenario) == (["here", "there"], 1)
