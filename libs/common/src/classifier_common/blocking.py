"""Blocking calls (the job store, the broker's admin channel) made from a request's event loop.

:func:`in_thread` runs one in a thread pool of this process and awaits it. It replaces FastAPI's
``run_in_threadpool`` (anyio's ``to_thread.run_sync``), whose per-call machinery (a cancel
scope, a capacity limiter, a queue per worker thread) cost about 80 µs of CPU per call against
about 35 µs for the event loop's own executor (16 concurrent callers on uvloop,
docs/performance.md). Like anyio's, it runs the call in a copy of the caller's context (the
request id reaches the log lines the call writes), and a request canceled meanwhile still waits
for the call it started, so nothing it began outlives it; :func:`outliving_cancel` gives any
other future that guarantee.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

R = TypeVar("R")

# As many threads as anyio's default limiter allows: a request waiting on its publish confirm
# holds one, and the publisher pipelines up to PUBLISH_WINDOW of them.
MAX_THREADS = 40

_pool = ThreadPoolExecutor(max_workers=MAX_THREADS, thread_name_prefix="blocking")


async def in_thread(call: Callable[..., R], /, *args: object) -> R:
    """``call(*args)`` in a thread of the pool; its result, or what it raised."""
    context = contextvars.copy_context()
    # The call goes on in its thread whatever happens to the caller.
    return await outliving_cancel(asyncio.get_running_loop().run_in_executor(_pool, context.run, call, *args))


async def outliving_cancel(future: asyncio.Future[R]) -> R:
    """``future``'s result, or what it raised. A caller canceled meanwhile first waits for it to
    finish (whatever it began still settles), then is canceled, whatever the outcome."""
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        await asyncio.wait([future])
        if not future.cancelled():
            future.exception()  # retrieved: the outcome goes unused, the caller is canceled
        raise
