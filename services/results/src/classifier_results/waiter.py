"""Long-poll (``GET /v1/jobs/{id}?wait=N``): one poller per process for every waiting request.

Polling the store once per waiting request every 50 ms cost one full read per request per tick
and added up to 50 ms to every answer (a 25 ms job was answered after 50). Instead, while any
request waits, one thread asks the store every few milliseconds which of the awaited jobs have
finished — one indexed query for all of them, answering only ids — reads those jobs and hands
each to the requests waiting for it, which answer without another read. A finished job is
answered within a tick, and the cost is one small query per tick however many requests wait;
with none waiting the thread sleeps. It is a thread rather than a task on the event loop because
handing each tick's query to a worker thread and back cost ~10 times the query itself
(docs/performance.md).

Where the store can tell cheaply that nothing was committed since the last query (SQLite's data
version), a tick with no commit and no new waiter skips the query: with 16 requests waiting on
jobs that do not change, the poller's CPU fell from 70 to 26 ms per second (what is left is the
tick itself: waking every 2 ms costs ~20 µs, the check ~18 µs).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, field

from classifier_common.domain import Job
from classifier_common.store import JobStore

log = logging.getLogger(__name__)

TICK_S = 0.002


@dataclass(eq=False)
class _Waiter:
    loop: asyncio.AbstractEventLoop
    event: asyncio.Event = field(default_factory=asyncio.Event)
    job: Job | None = None  # the finished job, as the poller read it


class JobWaiter:
    def __init__(self, store: JobStore, tick_s: float = TICK_S):
        self.store = store
        self.tick_s = tick_s
        self._lock = threading.Lock()
        self._waiting: dict[str, list[_Waiter]] = {}
        self._someone_waits = threading.Event()
        # A request started waiting since the last query: its job may have finished before the
        # change counter was last read, so the next tick queries whatever the counter says.
        self._new_waiter = False
        self._thread: threading.Thread | None = None

    async def wait(self, job_id: str, timeout_s: float) -> Job | None:
        """The job once it has finished, or None after ``timeout_s`` (or when the store failed,
        or the job is gone): the caller then reads the job itself."""
        waiter = _Waiter(asyncio.get_running_loop())
        with self._lock:
            self._waiting.setdefault(job_id, []).append(waiter)
            self._new_waiter = True
            if self._thread is None:
                self._thread = threading.Thread(target=self._poll, name="long-poll", daemon=True)
                self._thread.start()
        self._someone_waits.set()
        try:
            await asyncio.wait_for(waiter.event.wait(), timeout_s)
        except TimeoutError:
            pass
        finally:
            with self._lock:
                waiters = self._waiting.get(job_id, [])
                if waiter in waiters:
                    waiters.remove(waiter)
                if not waiters:
                    self._waiting.pop(job_id, None)
        return waiter.job

    def _poll(self) -> None:
        seen: int | None = None  # the store's change counter read before the last query
        while True:
            self._someone_waits.wait()
            time.sleep(self.tick_s)
            with self._lock:
                job_ids = list(self._waiting)
                if not job_ids:
                    self._someone_waits.clear()  # sleep until the next request waits
                    continue
                new_waiter, self._new_waiter = self._new_waiter, False
            try:
                counter = self.store.change_counter()
                if counter is not None and counter == seen and not new_waiter:
                    continue
                # Read before the query: a commit after this read changes the counter, so the
                # next tick queries again.
                seen = counter
                finished = {job_id: self.store.get(job_id) for job_id in self.store.finished_among(job_ids)}
            except Exception:  # noqa: BLE001 - the store is down (or a bug): let every request read for itself
                log.debug("long-poll check failed; waking every waiting request", exc_info=True)
                seen = None
                finished = dict.fromkeys(job_ids)
            with self._lock:
                woken = [(waiter, job) for job_id, job in finished.items() for waiter in self._waiting.get(job_id, [])]
            for waiter, job in woken:
                waiter.job = job
                try:
                    waiter.loop.call_soon_threadsafe(waiter.event.set)
                except RuntimeError:
                    pass  # that request's event loop has closed
