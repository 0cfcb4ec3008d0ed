"""Long-poll (GET /v1/jobs/{id}?wait=N) in the results service: one poller per results process
asks the store which awaited jobs finished (``JobStore.finished_among``) and wakes just those
requests, instead of each request re-reading its job every 50 ms; while the store says nothing was
committed and no request started waiting, it does not even query. With the workers' finished-job
notices (a fanout on RabbitMQ, direct calls in process), the poller does not tick at all: it reads
the announced jobs, and everything only on a slow fallback. (docs/performance.md has the numbers.)
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from classifier_common import metrics
from classifier_common.broker import connect_consumer, connect_listener
from classifier_common.broker.memory import MemoryBroker, broker_for, forget_broker
from classifier_common.config import Settings
from classifier_common.domain import Job, JobStatus, utcnow
from classifier_common.store.base import JobStore
from classifier_common.store.sqlite import SqliteJobStore
from classifier_common.waiter import JobWaiter
from classifier_results.main import create_app
from devstack.isolated import AMQP_URL
from devstack.ports import free_port
from devstack.stack import delete_job_queues
from tests.utils.jobs import GOLDFINCH_RESULT, queued_job

# Longer than any wait below: an answer within it came from a notice (or a tick), not the fallback.
NO_FALLBACK_S = 60.0


@pytest.fixture
def memory_settings(tmp_path: Path) -> Iterator[Settings]:
    url = f"memory://levers-{uuid.uuid4().hex[:8]}"
    yield Settings(store_url=f"sqlite:///{tmp_path}/jobs.db", broker_url=url, spool_dir=None, log_format="text")
    forget_broker(url)


@pytest.fixture
def results(memory_settings: Settings) -> Iterator[tuple[TestClient, SqliteJobStore, MemoryBroker]]:
    """The results app, listening on an in-process broker for the notices a worker would send."""
    app = create_app(memory_settings)
    app.state.job_waiter.fallback_s = NO_FALLBACK_S
    with TestClient(app) as client:
        yield client, app.state.store, broker_for(memory_settings)


def _finish(store: JobStore, job_id: str) -> None:
    store.start(job_id, utcnow())
    store.finish(job_id, GOLDFINCH_RESULT, utcnow())


def _finish_later(store: JobStore, job_id: str, delay_s: float, broker: MemoryBroker | None = None) -> threading.Thread:
    """Finish the job after ``delay_s``, and announce it as a worker does when ``broker`` is given."""

    def finish() -> None:
        time.sleep(delay_s)
        _finish(store, job_id)
        if broker is not None:
            broker.announce_finished([job_id])

    thread = threading.Thread(target=finish)
    thread.start()
    return thread


def test_long_poll_answers_as_soon_as_the_job_finishes(
    results: tuple[TestClient, SqliteJobStore, MemoryBroker],
) -> None:
    client, store, broker = results
    jobs = [store.create(queued_job()) for _ in range(5)]
    answers: dict[str, tuple[float, dict]] = {}

    def poll(job_id: str) -> None:
        started = time.monotonic()
        response = client.get(f"/v1/jobs/{job_id}", params={"wait": 10})
        assert response.status_code == 200, response.text
        answers[job_id] = (time.monotonic() - started, response.json())

    pollers = [threading.Thread(target=poll, args=(job.id,)) for job in jobs[:4]]
    for thread in pollers:
        thread.start()
    finishers = [_finish_later(store, job.id, 0.3 + 0.1 * i, broker) for i, job in enumerate(jobs[:4])]
    for thread in pollers + finishers:
        thread.join(30)
    for job in jobs[:4]:
        waited, body = answers[job.id]
        assert body["status"] == "succeeded"
        assert body["result"]["predictions"][0]["label"] == "goldfinch"
        assert waited < 5, f"answered after {waited:.2f} s of a 10 s wait: the notice was not heard"
    # A job that does not finish is answered as it is when the wait runs out.
    started = time.monotonic()
    response = client.get(f"/v1/jobs/{jobs[4].id}", params={"wait": 0.5})
    assert response.status_code == 200 and response.json()["status"] == "queued"
    assert time.monotonic() - started >= 0.5


def test_the_results_service_listens_for_notices_from_its_first_long_poll(
    results: tuple[TestClient, SqliteJobStore, MemoryBroker],
) -> None:
    """A results service nobody long-polls (its clients submit and wait at the gateway) takes no
    notices; the first long-poll connects the listener."""
    client, store, _ = results
    listener = client.app.state.job_waiter.listener  # type: ignore[attr-defined]
    job = store.create(queued_job())
    assert client.get(f"/v1/jobs/{job.id}").json()["status"] == "queued"
    assert not listener.connected
    assert client.get(f"/v1/jobs/{job.id}", params={"wait": 0.1}).json()["status"] == "queued"
    assert listener.connected


def test_long_poll_on_a_job_deleted_meanwhile_is_404(
    results: tuple[TestClient, SqliteJobStore, MemoryBroker],
) -> None:
    client, store, _ = results
    client.app.state.job_waiter.fallback_s = 0.2  # nobody announces a deletion: the fallback sees it
    job = store.create(queued_job())

    def delete_later() -> None:
        time.sleep(0.3)
        store.delete(job.id)

    thread = threading.Thread(target=delete_later)
    thread.start()
    started = time.monotonic()
    response = client.get(f"/v1/jobs/{job.id}", params={"wait": 10})
    thread.join()
    assert response.status_code == 404, response.text
    assert time.monotonic() - started < 5


class _CountingStore:
    """A real SQLite store that counts the poller's queries."""

    def __init__(self, store: SqliteJobStore):
        self.store = store
        self.queries = 0

    def change_counter(self) -> int | None:
        return self.store.change_counter()

    def finished_among(self, job_ids: list[str]) -> set[str]:
        self.queries += 1
        return self.store.finished_among(job_ids)

    def get(self, job_id: str) -> Job | None:
        return self.store.get(job_id)


def test_long_poll_does_not_query_while_nothing_changes(tmp_path: Path) -> None:
    store = SqliteJobStore(tmp_path / "jobs.db")
    counting = _CountingStore(store)
    waiter = JobWaiter(counting, tick_s=0.002)  # type: ignore[arg-type]
    idle, finishing = store.create(queued_job()), store.create(queued_job())

    async def scenario() -> tuple[Job | None, int, float]:
        # One request waits 0.5 s on a job nobody touches: ~250 ticks, almost none query.
        assert await waiter.wait(idle.id, 0.5) is None
        queries_while_idle = counting.queries
        # A commit elsewhere is still seen within ticks.
        finisher = _finish_later(store, finishing.id, 0.2)
        started = time.monotonic()
        job = await waiter.wait(finishing.id, 5)
        waited = time.monotonic() - started
        finisher.join()
        return job, queries_while_idle, waited

    job, queries_while_idle, waited = asyncio.run(scenario())
    assert queries_while_idle <= 3, f"{queries_while_idle} queries while nothing changed"
    assert job is not None and job.status is JobStatus.succeeded and waited < 2


def test_long_poll_sees_a_job_that_finished_before_its_request_waited(tmp_path: Path) -> None:
    """The job finishes after the poller's last query but before the request starts waiting, so
    the change counter has nothing new to say: a new waiter alone must make the poller query."""
    store = SqliteJobStore(tmp_path / "jobs.db")
    counting = _CountingStore(store)
    waiter = JobWaiter(counting, tick_s=0.002)  # type: ignore[arg-type]
    other, job = store.create(queued_job()), store.create(queued_job())

    async def scenario() -> tuple[Job | None, float]:
        background = asyncio.ensure_future(waiter.wait(other.id, 30))  # keeps the poller ticking
        await asyncio.sleep(0.05)
        queries = counting.queries  # read before the commit: the poller may query right after it
        await asyncio.to_thread(_finish, store, job.id)
        deadline = time.monotonic() + 10
        while counting.queries == queries:  # the poller has seen the commit and queried
            assert time.monotonic() < deadline, "the poller never queried after the commit"
            await asyncio.sleep(0.002)
        await asyncio.sleep(0.02)  # ticks with nothing new: no more queries
        started = time.monotonic()
        finished = await waiter.wait(job.id, 2)
        waited = time.monotonic() - started
        background.cancel()
        return finished, waited

    finished, waited = asyncio.run(scenario())
    assert finished is not None and finished.status is JobStatus.succeeded
    assert waited < 1, f"answered after {waited:.2f} s: the new waiter was not checked"


def _checks(trigger: str) -> float:
    return metrics.LONG_POLL_CHECKS.labels(trigger)._value.get()


async def _wait_while_it_finishes(waiter: JobWaiter, store: JobStore, job_id: str) -> Job | None:
    """A request waits on the job; the job is finished (not announced) 0.1 s later."""
    waiting = asyncio.ensure_future(waiter.wait(job_id, 10))
    await asyncio.sleep(0.1)
    await asyncio.to_thread(_finish, store, job_id)
    return await asyncio.wait_for(waiting, 5)


def test_long_poll_with_notices_reads_only_the_announced_jobs(memory_settings: Settings, tmp_path: Path) -> None:
    store = SqliteJobStore(tmp_path / "jobs.db")
    counting = _CountingStore(store)
    waiter = JobWaiter(counting, connect_listener(memory_settings), fallback_s=NO_FALLBACK_S)  # type: ignore[arg-type]
    waiter.start()
    idle, finishing = store.create(queued_job()), store.create(queued_job())

    async def scenario() -> tuple[Job | None, int, bool]:
        assert await waiter.wait(idle.id, 0.5) is None
        queries_while_idle = counting.queries
        waiting = asyncio.ensure_future(waiter.wait(finishing.id, 10))
        await asyncio.sleep(0.1)
        await asyncio.to_thread(_finish, store, finishing.id)  # written, not announced
        await asyncio.sleep(0.5)
        answered_unannounced = waiting.done()
        broker_for(memory_settings).announce_finished([finishing.id])
        return await asyncio.wait_for(waiting, 5), queries_while_idle, answered_unannounced

    checks = {trigger: _checks(trigger) for trigger in ("notice", "tick")}
    job, queries_while_idle, answered_unannounced = asyncio.run(scenario())
    waiter.close()
    # The metrics say how it looked: on notices, never by ticking.
    assert _checks("notice") > checks["notice"] and _checks("tick") == checks["tick"]
    # One look at the newly waited-for job (it may have finished just before), then none.
    assert queries_while_idle <= 1, f"{queries_while_idle} queries while nothing was announced"
    assert not answered_unannounced, "answered without a notice: the poller still ticks"
    assert job is not None and job.status is JobStatus.succeeded


def test_an_announced_job_is_read_without_asking_which_jobs_finished(memory_settings: Settings, tmp_path: Path) -> None:
    """The notice says the job finished: the poller reads it at once, without the query for which
    of the waited-for jobs finished (one read per notice, not two)."""
    store = SqliteJobStore(tmp_path / "jobs.db")
    counting = _CountingStore(store)
    waiter = JobWaiter(counting, connect_listener(memory_settings), fallback_s=NO_FALLBACK_S)  # type: ignore[arg-type]
    waiter.start()
    job = store.create(queued_job())

    async def scenario() -> tuple[Job | None, int]:
        waiting = asyncio.ensure_future(waiter.wait(job.id, 10))
        await asyncio.sleep(0.2)  # the poller has looked at the newly waited-for job
        queries = counting.queries
        await asyncio.to_thread(_finish, store, job.id)
        broker_for(memory_settings).announce_finished([job.id])
        return await asyncio.wait_for(waiting, 5), counting.queries - queries

    finished, queries = asyncio.run(scenario())
    waiter.close()
    assert finished is not None and finished.status is JobStatus.succeeded
    assert queries == 0, f"{queries} queries for which jobs finished after the notice named the job"


class _ThreadRecordingStore(_CountingStore):
    """Also records which threads read jobs."""

    def __init__(self, store: SqliteJobStore):
        super().__init__(store)
        self.readers: list[str] = []

    def get(self, job_id: str) -> Job | None:
        self.readers.append(threading.current_thread().name)
        return super().get(job_id)


def test_a_notice_is_answered_on_the_listeners_thread_without_waking_the_poller(
    memory_settings: Settings, tmp_path: Path
) -> None:
    """A submit-and-wait's job is awaited from before its message is published (expect): its
    notice alone answers it, read where the notice arrives; the poller thread is not woken."""
    store = SqliteJobStore(tmp_path / "jobs.db")
    recording = _ThreadRecordingStore(store)
    waiter = JobWaiter(recording, connect_listener(memory_settings), fallback_s=NO_FALLBACK_S)  # type: ignore[arg-type]
    waiter.start()
    job = store.create(queued_job())

    async def scenario() -> Job | None:
        expected = waiter.expect(job.id, asyncio.get_running_loop())
        waiting = asyncio.ensure_future(waiter.wait(job.id, 10, expected=expected))
        await asyncio.sleep(0.05)
        await asyncio.to_thread(_finish, store, job.id)
        broker_for(memory_settings).announce_finished([job.id])
        return await asyncio.wait_for(waiting, 5)

    finished = asyncio.run(scenario())
    waiter.close()
    assert finished is not None and finished.status is JobStatus.succeeded
    assert recording.readers and "long-poll" not in recording.readers, recording.readers


def test_long_poll_fallback_answers_when_a_notice_was_lost(memory_settings: Settings, tmp_path: Path) -> None:
    store = SqliteJobStore(tmp_path / "jobs.db")
    waiter = JobWaiter(store, connect_listener(memory_settings), fallback_s=0.2)
    waiter.start()
    job = store.create(queued_job())

    finished = asyncio.run(_wait_while_it_finishes(waiter, store, job.id))  # its notice never comes
    waiter.close()
    assert finished is not None and finished.status is JobStatus.succeeded


def test_long_poll_fallback_is_not_put_off_by_a_stream_of_notices(memory_settings: Settings, tmp_path: Path) -> None:
    """At saturation notices never stop; the look at every waited-for job must still come."""
    store = SqliteJobStore(tmp_path / "jobs.db")
    waiter = JobWaiter(store, connect_listener(memory_settings), fallback_s=0.3)
    waiter.start()
    lost, busy = store.create(queued_job()), store.create(queued_job())
    stop = threading.Event()

    def announce_busy() -> None:  # another job, waited for, announced every 20 ms
        while not stop.wait(0.02):
            broker_for(memory_settings).announce_finished([busy.id])

    async def scenario() -> Job | None:
        background = asyncio.ensure_future(waiter.wait(busy.id, 30))
        waiting = asyncio.ensure_future(waiter.wait(lost.id, 10))
        await asyncio.sleep(0.1)
        await asyncio.to_thread(_finish, store, lost.id)  # its notice never comes
        try:
            return await asyncio.wait_for(waiting, 5)
        finally:
            background.cancel()

    announcer = threading.Thread(target=announce_busy)
    announcer.start()
    try:
        finished = asyncio.run(scenario())
    finally:
        stop.set()
        announcer.join()
        waiter.close()
    assert finished is not None and finished.status is JobStatus.succeeded


def test_a_canceled_job_answers_its_long_poll_at_once(
    results: tuple[TestClient, SqliteJobStore, MemoryBroker],
) -> None:
    client, store, _ = results
    job = store.create(queued_job())
    canceled: dict[str, int] = {}

    def cancel_later() -> None:
        time.sleep(0.3)
        canceled["status"] = client.delete(f"/v1/jobs/{job.id}").status_code

    thread = threading.Thread(target=cancel_later)
    thread.start()
    started = time.monotonic()
    response = client.get(f"/v1/jobs/{job.id}", params={"wait": 10})
    waited = time.monotonic() - started
    thread.join()
    assert canceled["status"] == 200
    assert response.status_code == 200 and response.json()["status"] == "canceled"
    assert waited < 5, f"answered after {waited:.2f} s: the cancel did not wake the request"


def test_long_poll_ticks_while_the_listener_is_not_connected(tmp_path: Path) -> None:
    """RabbitMQ is unreachable: no notice can come, so the poller looks at the store every tick."""
    settings = Settings(broker_url=f"amqp://guest:guest@127.0.0.1:{free_port()}/", queue_name="test.unreachable")
    store = SqliteJobStore(tmp_path / "jobs.db")
    waiter = JobWaiter(store, connect_listener(settings), fallback_s=NO_FALLBACK_S)
    waiter.start()
    job = store.create(queued_job())

    assert waiter.listener is not None and not waiter.listener.connected
    ticks = _checks("tick")
    finished = asyncio.run(_wait_while_it_finishes(waiter, store, job.id))
    waiter.close()
    assert finished is not None and finished.status is JobStatus.succeeded
    assert _checks("tick") > ticks


@pytest.mark.rabbitmq
def test_long_poll_hears_a_workers_notice_through_rabbitmq(tmp_path: Path) -> None:
    settings = Settings(broker_url=AMQP_URL, queue_name=f"test.{uuid.uuid4().hex[:12]}")
    store = SqliteJobStore(tmp_path / "jobs.db")
    consumer = connect_consumer(settings)  # the worker's side: it announces on its connection
    waiter = JobWaiter(store, connect_listener(settings), fallback_s=NO_FALLBACK_S)
    consumer.start()
    waiter.start()
    job = store.create(queued_job())
    try:
        deadline = time.monotonic() + 10
        while not (consumer.connected and waiter.listener and waiter.listener.connected):
            assert time.monotonic() < deadline, "consumer or listener did not connect"
            time.sleep(0.05)

        async def scenario() -> tuple[Job | None, bool]:
            waiting = asyncio.ensure_future(waiter.wait(job.id, 10))
            await asyncio.sleep(0.1)
            await asyncio.to_thread(_finish, store, job.id)
            await asyncio.sleep(0.3)
            early = waiting.done()
            consumer.announce_finished([job.id])
            return await asyncio.wait_for(waiting, 5), early

        finished, early = asyncio.run(scenario())
    finally:
        waiter.close()
        consumer.close()
        delete_job_queues(AMQP_URL, settings.queue_name)
    assert not early, "answered before the notice: the poller ticked although the listener was connected"
    assert finished is not None and finished.status is JobStatus.succeeded
