"""Long-poll (``GET /v1/jobs/{id}?wait=N``): one poller per process for every waiting request.

Polling the store once per waiting request every 50 ms cost one full read per request per tick
and added up to 50 ms to every answer (a 25 ms job was answered after 50). Instead, while any
request waits, one task asks the store every few milliseconds which of the awaited jobs have
finished — one indexed query for all of them, answering only ids — and wakes just those
requests, which then read their job once. A finished job is answered within one tick, and the
cost is a small query per tick however many requests wait (docs/performance.md has the numbers).
"""

from __future__ import annotations

import asyncio
import logging

from fastapi.concurrency import run_in_threadpool

from classifier_common.store import JobStore

log = logging.getLogger(__name__)

TICK_S = 0.005


class JobWaiter:
    def __init__(self, store: JobStore, tick_s: float = TICK_S):
        self.store = store
        self.tick_s = tick_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._events: dict[str, asyncio.Event] = {}
        self._waiters: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None

    async def wait(self, job_id: str, timeout_s: float) -> None:
        """Return when the job may have finished (or is gone, or the store failed), or after
        ``timeout_s``. The caller reads the job afterwards either way."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # first use, or a new event loop (a test client's): start afresh
            self._loop, self._events, self._waiters, self._task = loop, {}, {}, None
        event = self._events.setdefault(job_id, asyncio.Event())
        self._waiters[job_id] = self._waiters.get(job_id, 0) + 1
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._poll(), name="long-poll")
        try:
            await asyncio.wait_for(event.wait(), timeout_s)
        except TimeoutError:
            pass
        finally:
            self._waiters[job_id] -= 1
            if not self._waiters[job_id]:
                del self._waiters[job_id]
                del self._events[job_id]

    async def _poll(self) -> None:
        while self._events:
            await asyncio.sleep(self.tick_s)
            waiting = list(self._events)
            if not waiting:
                return
            try:
                done = await run_in_threadpool(self.store.finished_among, waiting)
            except Exception:  # noqa: BLE001 - the store is down (or a bug): let every request read for itself
                log.debug("long-poll check failed; waking every waiting request", exc_info=True)
                done = set(waiting)
            for job_id in done:
                event = self._events.get(job_id)
                if event is not None:
                    event.set()
