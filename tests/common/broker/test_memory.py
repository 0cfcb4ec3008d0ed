"""Contract tests of the embedded (in-process) job queue: the same delivery contract as the
RabbitMQ adapter (tests/common/broker/test_rabbitmq.py), where it applies."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator

import pytest

from classifier_common import metrics
from classifier_common.broker import connect_consumer, connect_listener, connect_publisher
from classifier_common.broker.memory import MemoryBroker, MemoryConsumer, MemoryPublisher, broker_for, forget_broker
from classifier_common.config import Settings
from classifier_common.errors import BrokerUnavailable, QueueFull
from classifier_common.messages import JobMessage
from tests.utils.jobs import queued_job


@pytest.fixture
def settings() -> Iterator[Settings]:
    url = f"memory://test-{uuid.uuid4().hex[:12]}"
    yield Settings(broker_url=url, queue_max_length=100, max_attempts=3, prefetch=2, spool_dir=None)
    forget_broker(url)


def started(settings: Settings) -> MemoryConsumer:
    consumer = connect_consumer(settings)
    assert isinstance(consumer, MemoryConsumer)
    consumer.start()
    return consumer


def test_publisher_and_consumer_from_one_url_share_a_queue(settings):
    publisher = connect_publisher(settings)
    assert isinstance(publisher, MemoryPublisher)
    other = settings.model_copy(update={"broker_url": settings.broker_url + "-other"})
    try:
        connect_publisher(other).publish(b"elsewhere", message_id="other")
        publisher.publish(b"here", message_id="job-1")
        delivery = started(settings).get(timeout=1)
        assert delivery is not None and delivery.body == b"here"
        assert broker_for(other).ready_count == 1
    finally:
        forget_broker(other.broker_url)


def test_unsupported_scheme_is_refused(settings):
    with pytest.raises(ValueError, match="redis"):
        connect_publisher(settings.model_copy(update={"broker_url": "redis://u:secret@host/0"}))


def test_publish_consume_ack_round_trip(settings):
    publisher = connect_publisher(settings)
    consumer = started(settings)
    publisher.publish(b'{"n": 1}', message_id="job-1")
    assert publisher.depth() == 1
    delivery = consumer.get(timeout=1)
    assert delivery is not None
    assert (delivery.body, delivery.message_id) == (b'{"n": 1}', "job-1")
    assert (delivery.delivery_count, delivery.redelivered) == (1, False)
    assert consumer.connected
    assert publisher.depth() == 0  # ready only, as RabbitMQ reports it
    delivery.ack()
    delivery.ack()  # ignored
    consumer.close()
    assert not consumer.connected
    broker = broker_for(settings)
    assert (broker.ready_count, broker.unacked_count, broker.dead) == (0, 0, [])


def test_get_waits_for_the_timeout_then_returns_none(settings):
    consumer = started(settings)
    before = time.monotonic()
    assert consumer.get(timeout=0.2) is None
    assert 0.15 <= time.monotonic() - before < 1


def test_get_wakes_up_for_a_message_published_meanwhile(settings):
    consumer = started(settings)
    publisher = connect_publisher(settings)
    threading.Timer(0.1, publisher.publish, args=(b"late",), kwargs={"message_id": "late"}).start()
    delivery = consumer.get(timeout=5)
    assert delivery is not None and delivery.message_id == "late"


def test_nothing_is_delivered_before_start(settings):
    connect_publisher(settings).publish(b"{}", message_id="job-1")
    consumer = connect_consumer(settings)
    assert consumer.get(timeout=0.05) is None
    consumer.start()
    assert consumer.get(timeout=1) is not None


def test_prefetch_bounds_what_one_consumer_holds(settings):
    publisher = connect_publisher(settings)  # prefetch 2
    for n in range(3):
        publisher.publish(b"{}", message_id=f"job-{n}")
    consumer = started(settings)
    first, second = consumer.get(timeout=1), consumer.get(timeout=1)
    assert first is not None and second is not None
    assert consumer.get(timeout=0.05) is None
    first.ack()
    third = consumer.get(timeout=1)
    assert third is not None and third.message_id == "job-2"


def test_unacked_delivery_is_redelivered_when_its_consumer_goes_away(settings):
    publisher = connect_publisher(settings)
    publisher.publish(b"job", message_id="job-1")
    worker = started(settings)
    first = worker.get(timeout=1)
    assert first is not None and (first.delivery_count, first.redelivered) == (1, False)
    worker.close()  # the worker dies holding the message
    first.ack()  # too late: a no-op
    again = started(settings).get(timeout=1)
    assert again is not None
    assert (again.body, again.message_id) == (b"job", "job-1")
    assert (again.delivery_count, again.redelivered) == (2, True)


def test_reject_without_requeue_dead_letters(settings):
    connect_publisher(settings).publish(b"poison", message_id="job-p")
    consumer = started(settings)
    delivery = consumer.get(timeout=1)
    assert delivery is not None
    delivery.reject(requeue=False)
    [dead] = broker_for(settings).dead
    assert (dead.body, dead.message_id, dead.reason, dead.delivery_count) == (b"poison", "job-p", "rejected", 1)
    assert consumer.get(timeout=0.05) is None


@pytest.mark.parametrize("max_attempts", [1, 3])
def test_delivery_limit_deliveries_then_dead_letter(settings, max_attempts):
    settings = settings.model_copy(update={"max_attempts": max_attempts})
    connect_publisher(settings).publish(b"fails", message_id="job-f")
    consumer = started(settings)
    counts = []
    for _ in range(settings.delivery_limit):  # max_attempts + 1
        delivery = consumer.get(timeout=1)
        assert delivery is not None and delivery.message_id == "job-f"
        assert delivery.redelivered == bool(counts)
        counts.append(delivery.delivery_count)
        delivery.reject(requeue=True)
    assert counts == list(range(1, settings.delivery_limit + 1))
    [dead] = broker_for(settings).dead
    assert (dead.message_id, dead.reason, dead.delivery_count) == ("job-f", "delivery_limit", settings.delivery_limit)
    assert consumer.get(timeout=0.05) is None


def test_deliveries_lost_with_their_consumer_count_towards_the_bound(settings):
    settings = settings.model_copy(update={"max_attempts": 2})
    connect_publisher(settings).publish(b"crashes the worker", message_id="job-c")
    for _ in range(settings.delivery_limit):
        worker = started(settings)
        assert worker.get(timeout=1) is not None
        worker.close()
    [dead] = broker_for(settings).dead
    assert (dead.reason, dead.delivery_count) == ("delivery_limit", settings.delivery_limit)


def test_full_queue_refuses_publishes_and_recovers_when_drained(settings):
    settings = settings.model_copy(update={"queue_max_length": 2})
    publisher = connect_publisher(settings)
    publisher.publish(b"{}", message_id="job-0")
    publisher.publish(b"{}", message_id="job-1")
    with pytest.raises(QueueFull) as refused:
        publisher.publish(b"{}", message_id="job-2")
    assert (refused.value.status_code, refused.value.retry_after) == (429, settings.broker_retry_after_s)

    consumer = started(settings)
    taken = [consumer.get(timeout=1), consumer.get(timeout=1)]
    assert [d.message_id for d in taken if d is not None] == ["job-0", "job-1"]  # job-2 is not there
    # Like x-max-length, messages held by workers do not count: the queue has room again.
    publisher.publish(b"{}", message_id="job-3")
    for delivery in taken:
        assert delivery is not None
        delivery.ack()
    last = consumer.get(timeout=1)
    assert last is not None and last.message_id == "job-3"
    assert consumer.get(timeout=0.05) is None


def test_ack_after_stop_consuming(settings):
    publisher = connect_publisher(settings)
    publisher.publish(b"{}", message_id="one")
    consumer = started(settings)
    first = consumer.get(timeout=1)
    assert first is not None
    consumer.stop_consuming()
    publisher.publish(b"{}", message_id="two")
    assert consumer.get(timeout=0.05) is None  # nothing new
    first.ack()
    consumer.close()
    broker = broker_for(settings)
    assert (broker.ready_count, broker.unacked_count) == (1, 0)


def test_closed_publisher_is_unavailable(settings):
    publisher = connect_publisher(settings)
    publisher.ping()
    publisher.close()
    with pytest.raises(BrokerUnavailable):
        publisher.ping()
    with pytest.raises(BrokerUnavailable):
        publisher.publish(b"{}", message_id="x")


def test_many_threads_each_message_exactly_once(settings):
    settings = settings.model_copy(update={"queue_max_length": 10_000})
    publisher = connect_publisher(settings)
    received: Counter[str] = Counter()
    lock = threading.Lock()
    done = threading.Event()

    def consume() -> None:
        consumer = started(settings)
        while not done.is_set():
            delivery = consumer.get(timeout=0.05)
            if delivery is None:
                continue
            if delivery.delivery_count == 1 and delivery.message_id.endswith("0"):
                delivery.reject(requeue=True)  # some work fails once and is retried
                continue
            with lock:
                received[delivery.message_id] += 1
            delivery.ack()
        consumer.close()

    def produce(thread: int) -> None:
        for n in range(250):
            publisher.publish(b"{}", message_id=f"{thread}-{n}")

    consumers = [threading.Thread(target=consume) for _ in range(4)]
    producers = [threading.Thread(target=produce, args=(t,)) for t in range(4)]
    for thread in consumers + producers:
        thread.start()
    for thread in producers:
        thread.join()
    broker: MemoryBroker = broker_for(settings)
    deadline = time.monotonic() + 10
    while (broker.ready_count or broker.unacked_count) and time.monotonic() < deadline:
        time.sleep(0.01)
    done.set()
    for thread in consumers:
        thread.join()
    assert len(received) == 1000 and set(received.values()) == {1}
    assert broker.dead == []


def test_spool_keeps_unacked_messages_across_a_restart(tmp_path):
    from classifier_common.broker.memory import MemoryBroker, MemoryConsumer

    first = MemoryBroker(max_length=10, max_attempts=4, spool_dir=tmp_path)
    for n in range(3):
        first.publish(f"body-{n}".encode(), f"job-{n}")
    consumer = MemoryConsumer(first, prefetch=5)
    consumer.start()
    consumer.get(timeout=1).ack()  # job-0 done
    consumer.get(timeout=1).reject(requeue=False)  # job-1 dead-lettered
    held = consumer.get(timeout=1)  # job-2 taken, then the process "dies"
    assert held.message_id == "job-2"

    second = MemoryBroker(max_length=10, max_attempts=4, spool_dir=tmp_path)
    consumer = MemoryConsumer(second, prefetch=5)
    consumer.start()
    recovered = consumer.get(timeout=1)
    assert (recovered.message_id, recovered.body, recovered.redelivered) == ("job-2", b"body-2", True)
    assert consumer.get(timeout=0.05) is None
    assert [p.name.split("-", 1)[1] for p in (tmp_path / "dead").iterdir()] == ["job-1.msg"]
    recovered.ack()
    assert not list(tmp_path.glob("*.msg"))


def test_finished_notices_reach_the_listeners_of_the_same_broker(settings):
    consumer = started(settings)
    heard: list[list[str]] = []
    connects: list[bool] = []
    listener = connect_listener(settings)
    other = connect_listener(settings.model_copy(update={"broker_url": settings.broker_url + "-other"}))
    other_heard: list[list[str]] = []
    try:
        listener.start(heard.append, lambda: connects.append(True))
        other.start(other_heard.append, lambda: None)
        assert listener.connected and connects == [True]
        assert metrics.FINISHED_LISTENER_CONNECTED._value.get() == 1
        consumer.announce_finished(["a" * 32, "b" * 32])
        assert heard == [["a" * 32, "b" * 32]] and other_heard == []
    finally:
        listener.close()
        other.close()
        forget_broker(settings.broker_url + "-other")
    consumer.announce_finished(["c" * 32])  # after close: not heard
    assert heard == [["a" * 32, "b" * 32]] and not listener.connected
    assert metrics.FINISHED_LISTENER_CONNECTED._value.get() == 0


def test_each_pool_is_a_queue_of_its_own_and_notices_are_heard_from_all(tmp_path):
    url = f"memory://pools-{uuid.uuid4().hex[:12]}"
    pooled = Settings(
        broker_url=url,
        pools="lite=efficientnet_lite0;big=efficientnet_lite2",
        queue_max_length=1,
        max_attempts=1,
        spool_dir=tmp_path,
    )
    try:
        publisher = connect_publisher(pooled)
        publisher.publish(b"to lite", message_id="lite-1", pool="lite")
        with pytest.raises(QueueFull) as full:
            publisher.publish(b"refused", message_id="lite-2", pool="lite")
        assert full.value.details == {"pool": "lite", "max_length": 1}
        publisher.publish(b"to big", message_id="big-1", pool="big")  # big's queue is apart
        with pytest.raises(ValueError, match="no queue for pool 'default'"):
            publisher.publish(b"{}", message_id="nowhere")
        assert [p.name for p in sorted((tmp_path / "pools").iterdir())] == ["big", "lite"]  # spooled per pool

        heard: list[list[str]] = []
        listener = connect_listener(pooled)
        listener.start(heard.append, lambda: None)
        big = started(pooled.model_copy(update={"pool": "big"}))
        delivery = big.get(timeout=1)
        assert delivery is not None and delivery.body == b"to big"
        assert big.get(timeout=0.1) is None  # lite's message is not big's
        big.announce_finished(["big-1"])
        started(pooled.model_copy(update={"pool": "lite"})).announce_finished(["lite-1"])
        assert heard == [["big-1"], ["lite-1"]]
        assert (publisher.depth("lite"), publisher.depth("big")) == (1, 0)
        listener.close()
    finally:
        forget_broker(url)


def test_messages_spooled_before_pools_are_moved_to_their_pool(tmp_path):
    def message(model: str) -> tuple[str, bytes]:
        job = queued_job(model=model)
        return job.id, JobMessage.for_job(job).encode()

    # One queue, as an earlier version spooled it: ready messages at the top, dead letters in dead/.
    (tmp_path / "dead").mkdir()
    big_id, big_body = message("efficientnet_lite2")
    lite_id, lite_body = message("efficientnet_lite0")
    (tmp_path / f"{1:020d}-{big_id}.msg").write_bytes(big_body)
    (tmp_path / f"{2:020d}-{lite_id}.msg").write_bytes(lite_body)
    (tmp_path / f"{3:020d}-junk.msg").write_bytes(b"not a job")
    (tmp_path / "dead" / f"{4:020d}-{lite_id}.msg").write_bytes(lite_body)
    url = f"memory://adopt-{uuid.uuid4().hex[:12]}"
    pooled = Settings(broker_url=url, pools="lite=efficientnet_lite0;big=efficientnet_lite2", spool_dir=tmp_path)
    try:
        big = broker_for(pooled, "big")
        lite = broker_for(pooled, "lite")
        assert big.ready_count == 1 and lite.ready_count == 2  # lite, the first pool, took the junk too
        assert [dead.message_id for dead in lite.dead] == [lite_id] and big.dead == []
        assert not list(tmp_path.glob("*.msg")) and not list((tmp_path / "dead").glob("*.msg"))
    finally:
        forget_broker(url)
