"""Waiting for jobs to finish: one poller per process for every waiting request — the results
service's long-poll (``GET /v1/jobs/{id}?wait=N``) and the gateway's submit-and-wait
(``POST /v1/jobs?wait=N``).

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
version), a tick with no commit reads only the jobs of requests that started waiting since the
last query (they may have finished before it), usually none: with 16 requests waiting on jobs
that do not change, the poller's CPU fell from 70 to 26 ms per second (what is left is the
tick itself: waking every 2 ms costs ~20 µs, the check ~18 µs).

With a finished-job listener connected (``classifier_common.broker.FinishedListener``: workers
announce the jobs they finished), the poller does not tick. A notice naming jobs someone waits
for is answered on the listener's own thread: it reads those jobs (the notice says they
finished, so no query asks which did) and hands each to its requests, with no other thread woken
(one hand-off between threads less per notice than through the poller: docs/performance.md). The
poller sleeps until a request starts waiting (its job may have finished, and been announced,
just before), and then asks whether that job finished. Every ``fallback_s`` (and after each
reconnect of the listener, whose notices in between are lost) it looks at all the waited-for
jobs, as a tick does, so a lost notice delays an answer by at most that. A job canceled here is
handed to its requests by the cancel itself (:meth:`JobWaiter.finished`); one canceled on
another replica is seen by that fallback. While the listener is disconnected the poller ticks as
above.

A request that starts waiting once its job is recorded but before its message is published (the
gateway's submit-and-wait, :meth:`JobWaiter.expect`) skips that first query: its job cannot have
finished yet, so the notice alone answers it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from dataclasses import dataclass, field

from classifier_common import metrics
from classifier_common.broker import FinishedListener
from classifier_common.domain import Job
from classifier_common.store import JobStore

log = logging.getLogger(__name__)

# The longest a request may wait for its job (GET /v1/jobs/{id}?wait=N, POST /v1/jobs?wait=N).
MAX_WAIT_S = 30.0
TICK_S = 0.002
FALLBACK_S = 1.0


# Every waiter of the process, for release_all() when it stops.
_waiters: weakref.WeakSet[JobWaiter] = weakref.WeakSet()


def release_all() -> None:
    """The process is stopping: answer every waiting request now, with its job as it stands (see
    :meth:`JobWaiter.release`). The server calls it before it waits for requests in flight."""
    for waiter in list(_waiters):
        waiter.release()


@dataclass(eq=False)
class Waiting:
    """One request waiting for one job."""

    loop: asyncio.AbstractEventLoop
    job_id: str
    event: asyncio.Event = field(default_factory=asyncio.Event)
    job: Job | None = None  # the finished job, as the poller read it

    def wake(self) -> None:
        """End the request's wait, from any thread."""
        try:
            self.loop.call_soon_threadsafe(self.event.set)
        except RuntimeError:
            pass  # that request's event loop has closed


class JobWaiter:
    def __init__(
        self,
        store: JobStore,
        listener: FinishedListener | None = None,
        *,
        tick_s: float = TICK_S,
        fallback_s: float = FALLBACK_S,
    ):
        self.store = store
        self.listener = listener
        self.tick_s = tick_s
        self.fallback_s = fallback_s
        self._lock = threading.Lock()
        self._waiting: dict[str, list[Waiting]] = {}
        self._someone_waits = threading.Event()
        # Jobs to look at next whatever the change counter says: newly waited for (such a job may
        # have finished before the counter was last read, so first asked whether it did). And
        # whether to look at every waited-for job (the listener reconnected).
        self._due: set[str] = set()
        self._look_at_all = False
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = False
        self._released = False
        _waiters.add(self)

    def start(self) -> None:
        """Start the listener, if any (the poller itself starts with the first waiting request).
        Called again, it does nothing; :meth:`wait` calls it, so a process that never waits
        never listens (the gateway's listener starts with its first submit-and-wait)."""
        with self._lock:
            if self._started:
                return
            self._started = True
        if self.listener is not None:
            self.listener.start(self.notify, self._listener_connected)

    def close(self) -> None:
        if self.listener is not None:
            self.listener.close()

    def release(self) -> None:
        """Stop waiting: every request waiting now, and any that starts to, gets None at once, so
        it answers with its job as it stands (a queued job's 202, a long-poll's current view)
        instead of being cut off when the server's grace period for requests in flight ends."""
        with self._lock:
            self._released = True
            waiters = [waiter for waiting in self._waiting.values() for waiter in waiting]
        for waiter in waiters:
            waiter.wake()

    def notify(self, job_ids: list[str]) -> None:
        """These jobs finished (the listener's callback, on its thread): the requests waiting on
        them are answered from here, each job read once. Should the store fail, they are woken
        to read for themselves."""
        with self._lock:
            waited = [job_id for job_id in job_ids if job_id in self._waiting]
        if not waited:
            return
        metrics.LONG_POLL_CHECKS.labels("notice").inc()
        try:
            finished = {
                job_id: job for job_id in waited if (job := self.store.get(job_id)) is None or job.status.finished
            }
        except Exception:  # noqa: BLE001 - the store is down (or a bug): let those requests read for themselves
            log.debug("reading announced jobs failed; waking their requests", exc_info=True)
            finished = dict.fromkeys(waited)
        self._answer(finished)

    def finished(self, job: Job) -> None:
        """This job finished here (a cancel): the requests waiting on it answer with it now."""
        self._answer({job.id: job})

    def _answer(self, finished: dict[str, Job | None]) -> None:
        """Wake the requests waiting on these jobs, each with its job (None: read it yourself)."""
        with self._lock:
            answers = [(w, job) for job_id, job in finished.items() for w in self._waiting.get(job_id, [])]
        for waiter, job in answers:
            waiter.job = job
            waiter.wake()

    def _listener_connected(self) -> None:
        with self._lock:
            self._look_at_all = True
            self._wake.set()

    def expect(self, job_id: str, loop: asyncio.AbstractEventLoop) -> Waiting | None:
        """Start waiting, for a request on ``loop``, for a job recorded in the store whose message
        is not published yet (from any thread). Such a job cannot have finished before this, so
        its notice alone answers it: the poller does not first ask the store whether it finished
        (one query and one wake of the poller less per job). Pass what this returns to
        :meth:`wait`, and to :meth:`forget` when the job was not queued after all. None once the
        waiter is released (:meth:`wait` then answers None at once)."""
        return self._register(job_id, loop, finished_maybe=False)

    def forget(self, waiting: Waiting) -> None:
        """Stop waiting (a second call does nothing)."""
        with self._lock:
            waiters = self._waiting.get(waiting.job_id, [])
            if waiting in waiters:
                waiters.remove(waiting)
            if not waiters:
                self._waiting.pop(waiting.job_id, None)

    async def wait(self, job_id: str, timeout_s: float, *, expected: Waiting | None = None) -> Job | None:
        """The job once it has finished, or None after ``timeout_s`` (or when the store failed,
        or the job is gone): the caller then reads the job itself. ``expected``: the wait
        :meth:`expect` started for this job before its message was published."""
        waiting = expected or self._register(job_id, asyncio.get_running_loop(), finished_maybe=True)
        if waiting is None:
            return None
        try:
            async with asyncio.timeout(timeout_s):  # no task of its own, unlike asyncio.wait_for
                await waiting.event.wait()
        except TimeoutError:
            pass
        finally:
            self.forget(waiting)
        return waiting.job

    def _register(self, job_id: str, loop: asyncio.AbstractEventLoop, *, finished_maybe: bool) -> Waiting | None:
        """A request on ``loop`` now waits for the job; None once released. A job that may have
        finished already (and been announced before anyone waited) is looked at once now."""
        self.start()
        waiting = Waiting(loop, job_id)
        with self._lock:
            if self._released:
                return None
            self._waiting.setdefault(job_id, []).append(waiting)
            if finished_maybe:
                self._due.add(job_id)
                self._wake.set()
            if self._thread is None:
                self._thread = threading.Thread(target=self._poll, name="long-poll", daemon=True)
                self._thread.start()
        self._someone_waits.set()
        return waiting

    def _poll(self) -> None:
        seen: int | None = None  # the store's change counter read before the last look at all jobs
        next_look = 0.0  # while listening: when to look at every waited-for job again (the fallback)
        while True:
            self._someone_waits.wait()
            listening = self.listener is not None and self.listener.connected
            if listening:
                # Woken by a new waiter (or the listener's reconnect); a steady stream of them must
                # not put off the fallback, so the wait ends at the next look whatever woke it.
                self._wake.wait(max(0.0, next_look - time.monotonic()))
            else:
                time.sleep(self.tick_s)
            with self._lock:
                self._wake.clear()
                job_ids = list(self._waiting)
                due = [job_id for job_id in self._due if job_id in self._waiting]
                self._due.clear()
                if not job_ids:
                    self._someone_waits.clear()  # sleep until the next request waits
                    continue
                reconnected, self._look_at_all = self._look_at_all, False
            try:
                now = time.monotonic()
                if listening and not reconnected and now < next_look:
                    ids, trigger = due, "notice"  # just started waiting
                else:
                    if listening:
                        next_look = now + self.fallback_s
                    counter = self.store.change_counter()
                    if counter is not None and counter == seen and not reconnected:
                        ids, trigger = due, "notice"  # nothing committed since the last look at all
                    else:
                        # Read before the query: a commit after this read changes the counter,
                        # so the next look queries again.
                        seen = counter
                        ids, trigger = job_ids, "fallback" if listening else "tick"
                if ids:
                    metrics.LONG_POLL_CHECKS.labels(trigger).inc()
                finished = {job_id: self.store.get(job_id) for job_id in self.store.finished_among(ids)} if ids else {}
            except Exception:  # noqa: BLE001 - the store is down (or a bug): let every request read for itself
                log.debug("long-poll check failed; waking every waiting request", exc_info=True)
                seen = None
                finished = dict.fromkeys(job_ids)
            self._answer(finished)
