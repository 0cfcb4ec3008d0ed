"""The reconciler: every job whose message was dead-lettered ends failed (dead_lettered), counted
and announced; a finished job keeps its outcome; nothing is lost while the store is down. With
the in-process broker and a real SQLite store; tests/common/broker/test_rabbitmq.py checks the
RabbitMQ dead-letter consumer, tests/reliability/test_bad_input.py the whole on the real queue."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from classifier_common import metrics
from classifier_common.broker.memory import MemoryBroker, MemoryConsumer, MemoryDeadLetterConsumer
from classifier_common.domain import Job, JobStatus, utcnow
from classifier_common.errors import StoreUnavailable
from classifier_common.messages import JobMessage
from classifier_common.store import JobStore, open_store
from classifier_worker.reconciler import Reconciler
from tests.utils.jobs import queued_job

LIMIT = 4  # deliveries before the broker dead-letters


@pytest.fixture
def store(tmp_path: Path) -> JobStore:
    return open_store(f"sqlite:///{tmp_path}/jobs.db")


@pytest.fixture
def broker() -> MemoryBroker:
    return MemoryBroker(max_length=100, max_attempts=LIMIT)


@pytest.fixture
def announced() -> list[str]:
    return []


@pytest.fixture
def reconciler(store: JobStore, broker: MemoryBroker, announced: list[str]) -> Iterator[Reconciler]:
    reconciler = Reconciler(store, MemoryDeadLetterConsumer(broker), announced.extend)
    reconciler.start()
    yield reconciler
    reconciler.stop()


def _queued(store: JobStore, broker: MemoryBroker) -> Job:
    job = queued_job()
    store.create(job)
    broker.publish(JobMessage.for_job(job).encode(), job.id)
    return job


def _wait(condition: Callable[[], bool], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} not within {timeout} s"
        time.sleep(0.02)


def _dead_lettered(reason: str) -> float:
    return metrics.JOBS_DEAD_LETTERED.labels(reason)._value.get()


def test_a_job_whose_deliveries_ran_out_ends_failed(
    reconciler: Reconciler, store: JobStore, broker: MemoryBroker, announced: list[str]
) -> None:
    job = _queued(store, broker)
    before = _dead_lettered("delivery_limit")
    for _ in range(LIMIT):  # each worker that took it died before writing an outcome
        consumer = MemoryConsumer(broker, prefetch=1)
        consumer.start()
        assert consumer.get(timeout=1) is not None
        store.start(job.id, utcnow())
        consumer.close()
    _wait(lambda: store.get(job.id).status is JobStatus.failed, "the job to fail")
    stored = store.get(job.id)
    assert stored.error.code == "dead_lettered" and "without an outcome" in stored.error.message
    assert announced == [job.id]
    assert _dead_lettered("delivery_limit") == before + 1
    _wait(lambda: not broker.dead, "the dead letter to be consumed")


def test_a_finished_job_keeps_its_outcome_and_poison_is_dropped(
    reconciler: Reconciler, store: JobStore, broker: MemoryBroker, announced: list[str]
) -> None:
    job = _queued(store, broker)
    store.cancel(job.id, utcnow())
    consumer = MemoryConsumer(broker, prefetch=2)
    consumer.start()
    broker.publish(b"[" * 10_000, "not-a-job")
    for _ in range(2):
        delivery = consumer.get(timeout=1)
        assert delivery is not None
        delivery.reject(requeue=False)
    _wait(lambda: not broker.dead, "the dead letters to be consumed")
    assert store.get(job.id).status is JobStatus.canceled and announced == []


def test_a_dead_letter_is_kept_while_the_store_is_down(
    store: JobStore, broker: MemoryBroker, announced: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    job = _queued(store, broker)
    real_get, calls = store.get, []

    def down_twice(job_id: str) -> Job | None:
        calls.append(job_id)
        if len(calls) <= 2:
            raise StoreUnavailable("database is locked")
        return real_get(job_id)

    monkeypatch.setattr(store, "get", down_twice)
    monkeypatch.setattr(MemoryDeadLetterConsumer, "RETRY_S", 0.05)
    reconciler = Reconciler(store, MemoryDeadLetterConsumer(broker), announced.extend)
    reconciler.start()
    try:
        consumer = MemoryConsumer(broker, prefetch=1)
        consumer.start()
        consumer.get(timeout=1).reject(requeue=False)
        _wait(lambda: announced == [job.id], "the job to be failed once the store answers")
    finally:
        reconciler.stop()
    assert len(calls) == 3 and real_get(job.id).error.code == "dead_lettered"


def test_the_worker_reconciles_what_it_dead_letters(store: JobStore, seeded: tuple[Path, Path]) -> None:
    """A message of a real job that cannot be parsed (nested too deep) is dead-lettered by the
    worker, and the job, named by the message id, ends failed instead of queued forever."""
    from classifier_common.broker import connect_consumer
    from classifier_common.broker.memory import broker_for, forget_broker
    from classifier_common.config import Settings
    from classifier_worker.worker import Worker

    settings = Settings(broker_url=f"memory://reconcile-{uuid.uuid4().hex[:8]}", spool_dir=None, models=[])
    broker = broker_for(settings)
    job = _queued(store, MemoryBroker(max_length=1, max_attempts=1))  # the record; its message:
    broker.publish(b"[" * 100_000 + b"]" * 100_000, job.id)
    worker = Worker(settings, connect_consumer(settings), store, {})
    worker.start()
    try:
        _wait(lambda: store.get(job.id).status is JobStatus.failed, "the job to fail")
    finally:
        worker.stop(timeout=10)
        forget_broker(settings.broker_url)
    assert store.get(job.id).error.code == "dead_lettered" and not broker.dead
