"""classifier_common.submission with a real SQLite store and a publisher whose confirms the test
gives: the confirm awaited on an event loop (as the gateway does), a refusal rolling the job back,
and a request canceled while it waits for the confirm."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future
from pathlib import Path

import pytest

from classifier_common import submission
from classifier_common.domain import Job, JobStatus, new_job_id
from classifier_common.errors import BrokerUnavailable, QueueFull
from classifier_common.store.sqlite import SqliteJobStore
from tests.utils.jobs import queued_job


class Publisher:
    """Hands out one pending confirm per publish, settled by the test; ``refuse_at_once`` raises
    from start_publish itself, as a publisher that knows the broker is down does."""

    def __init__(self, refuse_at_once: BrokerUnavailable | None = None):
        self.confirms: dict[str, Future[None]] = {}
        self.refuse_at_once = refuse_at_once

    def start_publish(self, body: bytes, *, message_id: str, pool: str = "default") -> Future[None]:
        if self.refuse_at_once is not None:
            raise self.refuse_at_once
        self.confirms[message_id] = Future()
        return self.confirms[message_id]

    def publish(self, body: bytes, *, message_id: str, pool: str = "default") -> None:
        self.start_publish(body, message_id=message_id, pool=pool).result()


@pytest.fixture
def store(tmp_path: Path):
    store = SqliteJobStore(tmp_path / "jobs.db")
    yield store
    store.close()


def start(store: SqliteJobStore, publisher: Publisher, job: Job) -> submission.Queuing:
    return submission.start(store, publisher, job, None, "default", claim_check_bytes=1024)  # type: ignore[arg-type]


def test_the_confirm_is_awaited_on_the_loop_and_then_the_job_is_queued(store) -> None:
    publisher, job = Publisher(), queued_job()

    async def scenario() -> tuple[Job, bool]:
        answer = asyncio.ensure_future(submission.queue_confirmed(store, lambda: start(store, publisher, job)))
        await asyncio.sleep(0.05)
        assert not answer.done()  # no confirm yet: no answer
        asyncio.get_running_loop().call_later(0.01, publisher.confirms[job.id].set_result, None)
        return await answer

    assert asyncio.run(scenario()) == (job, True)
    assert store.get(job.id).status is JobStatus.queued  # type: ignore[union-attr]


@pytest.mark.parametrize("refusal", [QueueFull("the job queue is full"), BrokerUnavailable("down")])
def test_a_refused_confirm_rolls_the_job_back(store, refusal) -> None:
    publisher, job = Publisher(), queued_job()

    def record() -> submission.Queuing:
        queuing = start(store, publisher, job)
        publisher.confirms[job.id].set_exception(refusal)
        return queuing

    async def scenario() -> None:
        await submission.queue_confirmed(store, record)

    with pytest.raises(type(refusal)):
        asyncio.run(scenario())
    assert store.get(job.id) is None  # the client was refused: the job never exists


def test_a_refusal_at_once_rolls_the_job_back(store) -> None:
    job = queued_job()
    with pytest.raises(BrokerUnavailable):
        start(store, Publisher(refuse_at_once=BrokerUnavailable("down")), job)
    assert store.get(job.id) is None


@pytest.mark.parametrize("refused", [True, False])
def test_a_request_canceled_while_it_awaits_the_confirm_still_settles_its_job(store, refused) -> None:
    publisher, job = Publisher(), queued_job()

    async def scenario() -> None:
        answer = asyncio.ensure_future(submission.queue_confirmed(store, lambda: start(store, publisher, job)))
        while job.id not in publisher.confirms:
            await asyncio.sleep(0.01)
        answer.cancel()  # the client went away
        await asyncio.sleep(0.01)
        assert not answer.done()  # it waits for the confirm it started
        confirm = publisher.confirms[job.id]
        if refused:
            confirm.set_exception(QueueFull("the job queue is full"))
        else:
            confirm.set_result(None)
        with pytest.raises(asyncio.CancelledError):
            await answer

    asyncio.run(scenario())
    stored = store.get(job.id)
    assert (stored is None) if refused else (stored is not None and stored.status is JobStatus.queued)


def test_a_request_canceled_while_its_job_is_recorded_still_settles_it(store) -> None:
    publisher, job = Publisher(), queued_job()
    recording = threading.Event()
    go_on = threading.Event()

    def record() -> submission.Queuing:
        recording.set()
        go_on.wait(10)  # the store is slow
        return start(store, publisher, job)

    async def scenario() -> None:
        answer = asyncio.ensure_future(submission.queue_confirmed(store, record))
        await asyncio.to_thread(recording.wait, 10)
        answer.cancel()  # the client went away while its job was being recorded
        go_on.set()
        while job.id not in publisher.confirms:
            await asyncio.sleep(0.01)
        publisher.confirms[job.id].set_exception(QueueFull("the job queue is full"))
        with pytest.raises(asyncio.CancelledError):
            await answer

    asyncio.run(scenario())
    assert store.get(job.id) is None  # refused after the request was gone: rolled back all the same


def test_a_replay_of_a_queued_job_publishes_again_and_a_refusal_keeps_the_job(store) -> None:
    publisher, job = Publisher(), queued_job()
    job = job.model_copy(update={"idempotency_key": "k"})
    first = start(store, publisher, job)
    publisher.confirms[job.id].set_result(None)
    assert submission.wait(store, first) == (job, True)
    replay = start(store, publisher, job.model_copy(update={"id": new_job_id()}))
    assert replay.created is False and replay.job.id == job.id
    publisher.confirms[job.id].set_exception(QueueFull("the job queue is full"))
    with pytest.raises(QueueFull):
        submission.wait(store, replay)
    assert store.get(job.id) is not None  # acknowledged before: it stays queued
