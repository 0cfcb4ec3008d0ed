"""Long-poll (``GET /v1/jobs/{id}?wait=N``): one poller per process for every waiting request.

Polling the store once per waiting request every 50 ms cost one full read per request per tick
and added up to 50 ms to every answer (a 25 ms job was answered after 50). Instead, while any
request waits, one thread asks the store every few milliseconds which of the awaited jobs have
finished — one indexed query for all of them, answering only ids — and wakes just those
requests, which then read their job once. A finished job is answered within a tick, and the
cost is one small query per tick however many requests wait; with none waiting the thread
sleeps. It is a thread rather than a task on the event loop because handing each tick's query
to a worker thread and back cost ~10 times the query itself (docs/performance.md).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time

from classifier_common.store import JobStore

log = logging.getLogger(__name__)

TICK_S = 0.002

_Waiter = tuple[asyncio.AbstractEventLoop, asyncio.Event]


class JobWaiter:
    def __init__(self, store: JobStore, tick_s: float = TICK_S):
        self.store = store
        self.tick_s = tick_s
        self._lock = threading.Lock()
        self._waiting: dict[str, list[_Waiter]] = {}
        self._someone_waits = threading.Event()
        self._thread: threading.Thread | None = None

    async def wait(self, job_id: str, timeout_s: float) -> None:
        """Return when the job may have finished (or is gone, or the store failed), or after
        ``timeout_s``. The caller reads the job afterwards either way."""
        waiter = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._waiting.setdefault(job_id, []).append(waiter)
            if self._thread is None:
                self._thread = threading.Thread(target=self._poll, name="long-poll", daemon=True)
                self._thread.start()
        self._someone_waits.set()
        try:
            await asyncio.wait_for(waiter[1].wait(), timeout_s)
        except TimeoutError:
            pass
        finally:
            with self._lock:
                waiters = self._waiting.get(job_id, [])
                if waiter in waiters:
                    waiters.remove(waiter)
                if not waiters:
                    self._waiting.pop(job_id, None)

    def _poll(self) -> None:
        while True:
            self._someone_waits.wait()
            time.sleep(self.tick_s)
            with self._lock:
                job_ids = list(self._waiting)
                if not job_ids:
                    self._someone_waits.clear()  # sleep until the next request waits
                    continue
            try:
                done = self.store.finished_among(job_ids)
            except Exception:  # noqa: BLE001 - the store is down (or a bug): let every request read for itself
                log.debug("long-poll check failed; waking every waiting request", exc_info=True)
                done = set(job_ids)
            with self._lock:
                woken = [waiter for job_id in done for waiter in self._waiting.get(job_id, [])]
            for loop, event in woken:
                try:
                    loop.call_soon_threadsafe(event.set)
                except RuntimeError:
                    pass  # that request's event loop has closed
