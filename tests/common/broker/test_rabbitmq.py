"""Contract tests of the RabbitMQ job-queue adapters against a real RabbitMQ.

They fail (never skip) when the broker is unreachable: CI starts it. Each test works on its own
queue ``test.<uuid>`` (its ``.dead`` queue and ``.finished`` exchange) and deletes them afterwards.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pika
import pytest
from pika.adapters.blocking_connection import BlockingChannel

from classifier_common.broker import (
    DeadLetter,
    connect_consumer,
    connect_dead_letters,
    connect_listener,
    connect_publisher,
    dead_letter_queue,
    finished_exchange,
)
from classifier_common.broker.rabbitmq import BrokerRefused, RabbitConsumer, RabbitPublisher
from classifier_common.broker.rabbitmq import publisher as publisher_module
from classifier_common.broker.rabbitmq.notices import NoticeSender
from classifier_common.config import Settings
from classifier_common.errors import BrokerUnavailable, QueueFull
from devstack.ports import free_port
from devstack.stack import delete_job_queues

pytestmark = pytest.mark.rabbitmq

AMQP_URL = os.environ.get("CLASSIFIER_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


def _raw_connection() -> pika.BlockingConnection:
    try:
        return pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    except pika.exceptions.AMQPError as exc:
        pytest.fail(f"RabbitMQ is not reachable at {AMQP_URL} ({exc!r}); start it with `rabbitmq-server -detached`")


@pytest.fixture(scope="module", autouse=True)
def rabbitmq_reachable() -> None:
    _raw_connection().close()


@pytest.fixture
def admin() -> Iterator[BlockingChannel]:
    """A raw pika channel to look at queues behind the adapters' backs."""
    connection = _raw_connection()
    yield connection.channel()
    if connection.is_open:
        connection.close()


@pytest.fixture
def settings() -> Iterator[Settings]:
    queue = f"test.{uuid.uuid4().hex[:12]}"
    yield Settings(broker_url=AMQP_URL, queue_name=queue, queue_max_length=100, max_attempts=3, prefetch=2)
    delete_job_queues(AMQP_URL, queue)


@pytest.fixture
def track() -> Iterator[Callable[[Any], Any]]:
    """Close every publisher/consumer a test made, even when it fails."""
    opened: list[Any] = []

    def add(thing: Any) -> Any:
        opened.append(thing)
        return thing

    yield add
    for thing in reversed(opened):
        thing.close()


def jobs_queue(settings: Settings) -> str:
    """The queue of the pool the fixture's adapters use (the one implicit pool)."""
    return settings.queue_for_pool(settings.pool)


def wait_for(condition: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached within {timeout} s")


def drain(channel: BlockingChannel, queue: str) -> list[tuple[pika.BasicProperties, bytes]]:
    """Take every ready message off ``queue`` (auto-ack)."""
    messages = []
    while True:
        method, properties, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            return messages
        messages.append((properties, body))


def ready_count(channel: BlockingChannel, queue: str) -> int:
    return channel.queue_declare(queue, passive=True).method.message_count


def wait_dead(channel: BlockingChannel, settings: Settings) -> tuple[pika.BasicProperties, bytes]:
    """The one message in the dead-letter queue (dead-lettering is asynchronous)."""

    def one() -> tuple[pika.BasicProperties, bytes] | None:
        method, properties, body = channel.basic_get(dead_letter_queue(jobs_queue(settings)), auto_ack=True)
        return (properties, body) if method is not None else None

    return wait_for(one, 5, "a dead letter")


def connections_of(kind: str, settings: Settings) -> list[str]:
    """The broker's ids of our adapter's connections, found by the connection name the adapter
    sets; other clients of the broker are not counted."""
    listing = subprocess.run(
        ["rabbitmqctl", "-q", "list_connections", "--no-table-headers", "pid", "client_properties"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    # One line per connection: "<rabbit@host.1.2.3>\t[...{"connection_name","..."}]".
    # The publisher names the queue prefix, the consumers their pool's queue: both start so.
    wanted = f'{{"connection_name","classifier {kind} queue={settings.queue_name}'
    return [line.split("\t", 1)[0] for line in listing.stdout.splitlines() if wanted in line]


def close_connections_from_server(kind: str, settings: Settings) -> int:
    """Close our adapter's connections from the broker's side (CONNECTION_FORCED); other clients
    of the broker are left alone."""
    pids = connections_of(kind, settings)
    for pid in pids:
        subprocess.run(["rabbitmqctl", "-q", "close_connection", pid, "test"], check=True, timeout=30)
    return len(pids)


class TcpOutage:
    """A TCP forwarder to RabbitMQ that can be cut (every connection dropped, new ones refused)
    and restored on the same port: a broker outage that only our adapters see."""

    def __init__(self, upstream: tuple[str, int]):
        self.upstream = upstream
        self.port = free_port()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._flowing = threading.Event()
        self._flowing.set()

    def stall(self) -> None:
        """Connections stay open and nothing more passes either way: a broker that hangs."""
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, []
            listener, self._listener = self._listener, None
        for sock in [listener, *sockets]:
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            with self._lock:
                self._sockets += [client, server]
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(source, target), daemon=True).start()

    def _pipe(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                self._flowing.wait()
                target.sendall(data)
        except OSError:
            pass
        for sock in (source, target):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@pytest.fixture
def outage() -> Iterator[TcpOutage]:
    params = pika.URLParameters(AMQP_URL)
    proxy = TcpOutage((params.host, params.port))
    proxy.up()
    yield proxy
    proxy.down()


def via(proxy: TcpOutage, settings: Settings) -> Settings:
    params = pika.URLParameters(AMQP_URL)
    url = f"amqp://{params.credentials.username}:{params.credentials.password}@127.0.0.1:{proxy.port}/"
    return settings.model_copy(update={"broker_url": url})


# ---------------------------------------------------------------------------------------------


def test_factories_pick_rabbitmq_for_amqp_urls(settings, track):
    assert isinstance(track(connect_publisher(settings)), RabbitPublisher)
    assert isinstance(track(connect_consumer(settings)), RabbitConsumer)


def test_topology_is_a_durable_quorum_queue_bounded_and_dead_lettered(settings, track):
    track(connect_publisher(settings))
    listing = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "name", "type", "durable", "arguments", "--formatter", "json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    queues = {q["name"]: q for q in json.loads(listing.stdout)}
    main, dead = queues[jobs_queue(settings)], queues[dead_letter_queue(jobs_queue(settings))]
    assert (main["type"], main["durable"]) == ("quorum", True)
    assert (dead["type"], dead["durable"]) == ("quorum", True)
    arguments = {name: value for name, _type, value in main["arguments"]}
    assert arguments == {
        "x-queue-type": "quorum",
        "x-delivery-limit": settings.delivery_limit - 1,
        "x-max-length": settings.queue_max_length,
        "x-overflow": "reject-publish",
        "x-dead-letter-exchange": "classifier.dlx",
        "x-dead-letter-routing-key": dead_letter_queue(jobs_queue(settings)),
    }


def test_publish_consume_ack_round_trip(settings, admin, track):
    publisher = track(connect_publisher(settings))
    consumer = track(connect_consumer(settings))
    publisher.publish(b'{"n": 1}', message_id="job-1")
    assert publisher.depth() == 1
    consumer.start()
    delivery = consumer.get(timeout=10)
    assert delivery is not None
    assert (delivery.body, delivery.message_id) == (b'{"n": 1}', "job-1")
    assert (delivery.delivery_count, delivery.redelivered) == (1, False)
    assert consumer.connected
    delivery.ack()
    delivery.ack()  # a second ack is ignored, not sent (it would close the channel)

    # The consumer is still on its first channel and keeps receiving.
    publisher.publish(b'{"n": 2}', message_id="job-2")
    second = consumer.get(timeout=10)
    assert second is not None and second.message_id == "job-2" and second.delivery_count == 1
    second.ack()
    consumer.close()
    assert not consumer.connected
    # Both acks reached the broker: nothing comes back after the consumer is gone.
    time.sleep(0.3)
    assert ready_count(admin, jobs_queue(settings)) == 0
    assert publisher.depth() == 0


def test_a_large_delivery_is_read_in_few_socket_reads(settings, track, monkeypatch):
    """A 300 KB message reaches the consumer in reads of up to RECV_BYTES, not pika's 4 KB: each
    read costs a parse of the frame so far (75 reads of 4 KB took a worker ~0.4 ms more CPU per
    photo)."""
    from pika.connection import Connection

    from classifier_common.broker.rabbitmq.connection import RECV_BYTES

    reads: list[int] = []
    original = Connection._on_data_available

    def counted(self: Connection, data_in: bytes) -> None:
        if threading.current_thread().name == "broker-consumer":
            reads.append(len(data_in))
        original(self, data_in)

    monkeypatch.setattr(Connection, "_on_data_available", counted)
    body = os.urandom(300_000)
    publisher = track(connect_publisher(settings))
    consumer = track(connect_consumer(settings))
    publisher.publish(body, message_id="large")
    consumer.start()
    delivery = consumer.get(timeout=10)
    assert delivery is not None and delivery.body == body
    delivery.ack()
    message_reads = [n for n in reads if n > 1000]  # not the handshake's or the ack's small frames
    assert sum(message_reads) >= len(body)
    assert len(message_reads) <= len(body) // RECV_BYTES + 3, f"{len(reads)} reads: {reads}"


def test_messages_are_persistent_json_with_the_message_id(settings, admin, track):
    publisher = track(connect_publisher(settings))
    publisher.publish(b'{"job": "x"}', message_id="job-x")
    [(properties, body)] = drain(admin, jobs_queue(settings))
    assert body == b'{"job": "x"}'
    assert properties.delivery_mode == 2
    assert properties.content_type == "application/json"
    assert properties.message_id == "job-x"


def publish_at_once(publisher: RabbitPublisher, threads: int, each: int, body: bytes) -> list[str]:
    """``threads`` threads, released together, each publishing ``each`` messages; the message
    ids, once every publish was confirmed (an error fails the test)."""
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def publish_many(thread: int) -> None:
        barrier.wait()
        try:
            for n in range(each):
                publisher.publish(body, message_id=f"{thread}-{n}")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    running = [threading.Thread(target=publish_many, args=(t,)) for t in range(threads)]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join()
    assert errors == []
    return sorted(f"{t}-{n}" for t in range(threads) for n in range(each))


def test_concurrent_publishers_are_all_confirmed(settings, admin, track):
    publisher = track(connect_publisher(settings.model_copy(update={"queue_max_length": 1000})))
    published = publish_at_once(publisher, 8, 25, b"{}")
    ids = sorted(properties.message_id for properties, _ in drain(admin, jobs_queue(settings)))
    assert ids == published


def test_concurrent_publishes_are_pipelined_on_one_connection(settings, admin, track):
    # 16 threads publishing at once: their messages go out on one publishing connection, several
    # unconfirmed at a time, instead of each thread holding a connection while it waits for its
    # confirm (the other connection declares the topology and answers the queue counts).
    publisher = track(connect_publisher(settings.model_copy(update={"queue_max_length": 1000})))
    published = publish_at_once(publisher, 16, 20, b"x" * 50_000)
    assert len(connections_of("publisher", settings)) == 2
    ids = sorted(properties.message_id for properties, _ in drain(admin, jobs_queue(settings)))
    assert ids == published


def test_publishes_that_come_together_share_one_wake_up_of_the_io_thread(settings, admin, track, monkeypatch):
    publisher = track(connect_publisher(settings))
    publisher.publish(b"{}", message_id="first")
    woken: list[int] = []
    gate = threading.Event()
    original = publisher_module._Pipeline._woken

    def held(self):  # noqa: ANN001, ANN202 - the I/O thread, held in its wake-up
        woken.append(1)
        gate.wait(10)
        return original(self)

    monkeypatch.setattr(publisher_module._Pipeline, "_woken", held)
    pending = [publisher.start_publish(b"{}", message_id=f"m{n}") for n in range(5)]
    gate.set()
    for future in pending:
        future.result(10)
    assert woken == [1]  # the first publish woke the thread; the other four were sent with it
    ids = [properties.message_id for properties, _ in drain(admin, jobs_queue(settings))]
    assert ids == ["first", "m0", "m1", "m2", "m3", "m4"]


def test_a_failure_in_the_publishers_io_thread_is_retried_on_a_fresh_connection(settings, admin, track, monkeypatch):
    publisher = track(connect_publisher(settings))
    publisher.publish(b"{}", message_id="before")
    send = publisher_module._Pipeline._send
    failures = []

    def failing_once(self):  # noqa: ANN001, ANN202
        if not failures:
            failures.append(True)
            raise RuntimeError("a bug in the I/O thread")
        return send(self)

    monkeypatch.setattr(publisher_module._Pipeline, "_send", failing_once)
    publisher.publish(b"{}", message_id="after")  # the first pipeline dies; the retry's delivers it
    assert failures == [True]
    ids = [properties.message_id for properties, _ in drain(admin, jobs_queue(settings))]
    assert ids == ["before", "after"]


def test_unacked_delivery_is_redelivered_when_its_consumer_goes_away(settings, track):
    publisher = track(connect_publisher(settings))
    publisher.publish(b"job", message_id="job-1")
    worker = track(connect_consumer(settings))
    worker.start()
    first = worker.get(timeout=10)
    assert first is not None and (first.delivery_count, first.redelivered) == (1, False)
    worker.close()  # the worker dies holding the message
    first.ack()  # too late: a no-op, not an error

    replacement = track(connect_consumer(settings))
    replacement.start()
    again = replacement.get(timeout=10)
    assert again is not None
    assert (again.body, again.message_id) == (b"job", "job-1")
    assert (again.delivery_count, again.redelivered) == (2, True)
    again.ack()


def test_reject_without_requeue_dead_letters(settings, admin, track):
    publisher = track(connect_publisher(settings))
    consumer = track(connect_consumer(settings))
    consumer.start()
    publisher.publish(b"poison", message_id="job-p")
    delivery = consumer.get(timeout=10)
    assert delivery is not None
    delivery.reject(requeue=False)
    properties, body = wait_dead(admin, settings)
    assert (body, properties.message_id) == (b"poison", "job-p")
    assert properties.headers["x-first-death-reason"] == "rejected"
    assert ready_count(admin, jobs_queue(settings)) == 0


@pytest.mark.parametrize("max_attempts", [1, 3])
def test_delivery_limit_deliveries_then_dead_letter(settings, admin, track, max_attempts):
    settings = settings.model_copy(update={"max_attempts": max_attempts})
    publisher = track(connect_publisher(settings))
    consumer = track(connect_consumer(settings))
    consumer.start()
    publisher.publish(b"fails", message_id="job-f")
    counts = []
    for _ in range(settings.delivery_limit):  # max_attempts + 1
        delivery = consumer.get(timeout=10)
        assert delivery is not None and delivery.message_id == "job-f"
        assert delivery.redelivered == bool(counts)
        counts.append(delivery.delivery_count)
        delivery.reject(requeue=True)
    assert counts == list(range(1, settings.delivery_limit + 1))
    properties, body = wait_dead(admin, settings)
    assert body == b"fails"
    assert properties.headers["x-first-death-reason"] == "delivery_limit"
    assert consumer.get(timeout=0.5) is None


def test_full_queue_refuses_publishes_and_recovers_when_drained(settings, admin, track):
    settings = settings.model_copy(update={"queue_max_length": 2})
    publisher = track(connect_publisher(settings))
    accepted, refused = [], []
    for n in range(6):
        try:
            publisher.publish(b"{}", message_id=f"job-{n}")
            accepted.append(f"job-{n}")
        except QueueFull as exc:
            assert (exc.status_code, exc.retry_after) == (429, settings.broker_retry_after_s)
            refused.append(f"job-{n}")
    # A quorum queue refuses once the ready count is *over* x-max-length (one publishing
    # channel here, so exactly one message of overshoot).
    assert len(accepted) == settings.queue_max_length + 1
    assert refused == [f"job-{n}" for n in range(len(accepted), 6)]
    # The refused messages are really not in the queue.
    assert [properties.message_id for properties, _ in drain(admin, jobs_queue(settings))] == accepted
    # Drained: publishes are accepted again.
    publisher.publish(b"{}", message_id="job-after")
    assert [properties.message_id for properties, _ in drain(admin, jobs_queue(settings))] == ["job-after"]


def test_start_publish_returns_before_the_confirm_and_settles_as_publish_does(settings, admin, outage, track):
    # The gateway's event loop awaits this future: the call itself must not wait for the broker.
    settings = via(outage, settings.model_copy(update={"queue_max_length": 1}))
    publisher = track(connect_publisher(settings))
    publisher.publish(b"{}", message_id="first")
    outage.stall()  # nothing reaches the broker, so no confirm can come back
    pending = publisher.start_publish(b"{}", message_id="second")
    assert not pending.done()
    outage.resume()
    assert pending.result(10) is None
    # The queue holds its bound plus one: the next is refused, through the future.
    refused = publisher.start_publish(b"{}", message_id="third")
    with pytest.raises(QueueFull):
        refused.result(10)
    assert [p.message_id for p, _ in drain(admin, jobs_queue(settings))] == ["first", "second"]


def test_start_publish_on_a_lost_connection_is_retried_on_a_fresh_one(settings, admin, track):
    publisher = track(connect_publisher(settings))
    publisher.publish(b"{}", message_id="before")
    assert close_connections_from_server("publisher", settings) >= 1
    assert publisher.start_publish(b"{}", message_id="after").result(10) is None
    assert [p.message_id for p, _ in drain(admin, jobs_queue(settings))] == ["before", "after"]


def test_start_publish_never_leaves_its_future_unsettled(settings, track, monkeypatch):
    # With no connection open, the publish opens one on a thread of its own: whatever goes wrong
    # there (here a bug) reaches the caller through the future instead of leaving it waiting.
    publisher = track(connect_publisher(settings))
    publisher.publish(b"{}", message_id="first")

    def broken(self, **_: Any) -> None:  # noqa: ANN001
        raise RuntimeError("a bug while opening")

    monkeypatch.setattr(RabbitPublisher, "_open_pipeline", broken)  # the keeper cannot reopen it either
    assert close_connections_from_server("publisher", settings) >= 1
    deadline = time.monotonic() + 10
    while publisher._pipeline is not None and publisher._pipeline.is_open:  # noqa: SLF001
        assert time.monotonic() < deadline, "the publisher did not see its connection closed"
        time.sleep(0.05)
    with pytest.raises(RuntimeError, match="a bug while opening"):
        publisher.start_publish(b"{}", message_id="second").result(10)


def test_publisher_reconnects_after_the_broker_closes_its_connection(settings, admin, track):
    publisher = track(connect_publisher(settings))
    publisher.publish(b"{}", message_id="before")
    assert close_connections_from_server("publisher", settings) >= 1
    publisher.publish(b"{}", message_id="after")
    publisher.ping()
    assert [p.message_id for p, _ in drain(admin, jobs_queue(settings))] == ["before", "after"]


def test_consumer_reconnects_after_the_broker_closes_its_connection(settings, track):
    publisher = track(connect_publisher(settings))
    consumer = track(connect_consumer(settings))
    consumer.start()
    publisher.publish(b"{}", message_id="held")
    held = consumer.get(timeout=10)
    assert held is not None and held.delivery_count == 1
    assert close_connections_from_server("consumer", settings) == 1
    held.ack()  # its channel is gone: dropped, and the broker delivers the message again

    again = consumer.get(timeout=10)
    assert again is not None and again.message_id == "held"
    assert (again.delivery_count, again.redelivered) == (2, True)
    again.ack()
    publisher.publish(b"{}", message_id="new")
    new = consumer.get(timeout=10)
    assert new is not None and new.message_id == "new"
    new.ack()
    assert consumer.connected


def test_outage_refuses_fast_then_both_sides_recover_by_themselves(settings, outage, track):
    settings = via(outage, settings)
    publisher = track(connect_publisher(settings))
    consumer = track(connect_consumer(settings))
    consumer.start()
    wait_for(lambda: consumer.connected, what="consumer connected")

    outage.down()
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable) as refused:
        publisher.publish(b"{}", message_id="during")
    assert refused.value.status_code == 503 and refused.value.retry_after == settings.broker_retry_after_s
    with pytest.raises(BrokerUnavailable):
        publisher.ping()
    assert time.monotonic() - started < 2
    wait_for(lambda: not consumer.connected, 5, "consumer noticing the outage")

    outage.up()

    def publisher_back() -> bool:
        try:
            publisher.ping()
            return True
        except BrokerUnavailable:
            return False

    wait_for(publisher_back, 15, "publisher reconnected")
    publisher.publish(b"{}", message_id="after")
    delivery = consumer.get(timeout=15)
    assert delivery is not None and delivery.message_id == "after"
    delivery.ack()


def test_unreachable_broker_is_unavailable_quickly_never_a_hang(settings, track):
    settings = settings.model_copy(update={"broker_url": f"amqp://guest:guest@127.0.0.1:{free_port()}/"})
    started = time.monotonic()
    publisher = track(connect_publisher(settings))  # starts unready instead of failing start-up
    with pytest.raises(BrokerUnavailable):
        publisher.publish(b"{}", message_id="x")
    with pytest.raises(BrokerUnavailable):
        publisher.ping()
    with pytest.raises(BrokerUnavailable):
        publisher.depth()
    consumer = track(connect_consumer(settings))
    consumer.start()
    assert consumer.get(timeout=0.5) is None
    assert not consumer.connected
    consumer.close()
    assert time.monotonic() - started < 3


def consumer_gives_up(consumer: RabbitConsumer) -> None:
    consumer.start()

    def refused() -> bool:
        try:
            consumer.get(timeout=0.1)
            return False
        except BrokerRefused:
            return True

    wait_for(refused, 5, "the consumer giving up")
    assert not consumer.connected


def test_conflicting_queue_is_refused_without_retrying(settings, admin, track):
    admin.queue_declare(jobs_queue(settings), durable=True)  # a classic queue: other arguments
    with pytest.raises(BrokerRefused, match="PRECONDITION_FAILED"):
        connect_publisher(settings)
    consumer_gives_up(track(connect_consumer(settings)))


def test_bad_credentials_are_refused_without_retrying(settings, track):
    params = pika.URLParameters(AMQP_URL)
    bad = settings.model_copy(update={"broker_url": f"amqp://nobody:wrong@{params.host}:{params.port}/"})
    with pytest.raises(BrokerRefused):
        connect_publisher(bad)
    consumer_gives_up(track(connect_consumer(bad)))


def test_ack_after_stop_consuming(settings, admin, track):
    publisher = track(connect_publisher(settings))  # prefetch 2
    consumer = track(connect_consumer(settings))
    publisher.publish(b"{}", message_id="one")
    publisher.publish(b"{}", message_id="two")
    consumer.start()
    first = consumer.get(timeout=10)
    assert first is not None and first.message_id == "one"
    wait_for(lambda: ready_count(admin, jobs_queue(settings)) == 0, what="both messages prefetched")

    consumer.stop_consuming()
    publisher.publish(b"{}", message_id="three")
    # What was delivered before the cancel can still be taken and settled...
    second = consumer.get(timeout=5)
    assert second is not None and second.message_id == "two"
    # ...and nothing new arrives.
    assert consumer.get(timeout=0.5) is None
    first.ack()
    second.ack()
    consumer.close()
    time.sleep(0.3)
    assert [p.message_id for p, _ in drain(admin, jobs_queue(settings))] == ["three"]


class Heard:
    """What a finished-job listener heard: each notice's job ids, and its (re)connects."""

    def __init__(self) -> None:
        self.notices: list[list[str]] = []
        self.connects = 0

    def finished(self, job_ids: list[str]) -> None:
        self.notices.append(job_ids)

    def connected(self) -> None:
        self.connects += 1


def listening(settings: Settings, track: Callable[[Any], Any]) -> Heard:
    heard = Heard()
    listener = track(connect_listener(settings))
    listener.start(heard.finished, heard.connected)
    wait_for(lambda: listener.connected, 10, "the listener to connect")
    return heard


def test_finished_notices_fan_out_to_every_listener(settings, admin, track):
    consumer = track(connect_consumer(settings))
    consumer.start()
    wait_for(lambda: consumer.connected, 10, "the consumer to connect")
    first, second = listening(settings, track), listening(settings, track)
    ids = [uuid.uuid4().hex for _ in range(3)]
    consumer.announce_finished(ids)
    wait_for(lambda: first.notices and second.notices, 5, "both listeners to hear the notice")
    assert first.notices == second.notices == [ids]
    # Anything that is not a list of job ids is ignored; the jobs queue never sees a notice.
    admin.basic_publish(finished_exchange(settings.queue_name), "", b"\xff not ids")
    consumer.announce_finished([ids[0]])
    wait_for(lambda: len(first.notices) == 3, 5, "the next notices")
    assert sorted(first.notices[1:]) == [[], [ids[0]]]  # two connections: either order
    assert ready_count(admin, jobs_queue(settings)) == 0
    assert (first.connects, second.connects) == (1, 1)


def test_listener_reconnects_after_the_broker_closes_its_connection(settings, track):
    consumer = track(connect_consumer(settings))
    consumer.start()
    wait_for(lambda: consumer.connected, 10, "the consumer to connect")
    heard = listening(settings, track)
    assert close_connections_from_server("finished-listener", settings) == 1
    wait_for(lambda: heard.connects == 2, 15, "the listener to reconnect")
    job_id = uuid.uuid4().hex
    consumer.announce_finished([job_id])
    wait_for(lambda: heard.notices, 5, "a notice after the reconnect")
    assert heard.notices == [[job_id]]


def test_dead_letters_are_handed_over_with_their_reason_and_kept_until_handled(settings, admin, track):
    publisher = track(connect_publisher(settings))
    consumer = track(connect_consumer(settings))
    consumer.start()
    handed: list[DeadLetter] = []

    def handle(dead: DeadLetter) -> bool:
        handed.append(dead)
        return len(handed) > 1  # the first time, as if the store were down: kept

    dead_letters = track(connect_dead_letters(settings))
    dead_letters.start(handle)
    wait_for(lambda: dead_letters.connected, 10, "the dead-letter consumer to connect")
    publisher.publish(b"poison", message_id="job-p")
    consumer.get(timeout=10).reject(requeue=False)
    wait_for(lambda: len(handed) == 2, 10, "the dead letter, twice")
    assert {(d.body, d.message_id, d.reason) for d in handed} == {(b"poison", "job-p", "rejected")}
    publisher.publish(b"fails", message_id="job-f")
    for _ in range(settings.delivery_limit):
        consumer.get(timeout=10).reject(requeue=True)
    wait_for(lambda: len(handed) == 3, 10, "the dead letter of the delivery limit")
    assert (handed[2].message_id, handed[2].reason) == ("job-f", "delivery_limit")
    time.sleep(0.2)
    assert ready_count(admin, dead_letter_queue(jobs_queue(settings))) == 0


@pytest.fixture
def pooled() -> Iterator[Settings]:
    queue = f"test.{uuid.uuid4().hex[:12]}"
    settings = Settings(
        broker_url=AMQP_URL,
        queue_name=queue,
        pools="lite=efficientnet_lite0,efficientnet_lite1;big=efficientnet_lite2",
        queue_max_length=2,
        max_attempts=1,
        prefetch=2,
    )
    yield settings
    delete_job_queues(AMQP_URL, queue, ["lite", "big"])


def test_each_pool_has_its_queue_its_bound_and_its_dead_letters(pooled, admin, track):
    publisher = track(connect_publisher(pooled))  # declares every pool's queues
    lite, big = pooled.queue_for_pool("lite"), pooled.queue_for_pool("big")
    with pytest.raises(ValueError, match="no queue for pool 'default'"):
        publisher.publish(b"{}", message_id="nowhere")  # CLASSIFIER_POOL's default is no pool here
    for n in range(3):  # x-max-length 2, plus the one message of overshoot
        publisher.publish(b"{}", message_id=f"lite-{n}", pool="lite")
    with pytest.raises(QueueFull) as full:
        publisher.publish(b"{}", message_id="lite-refused", pool="lite")
    assert full.value.details == {"pool": "lite", "max_length": 2}
    publisher.publish(b"{}", message_id="big-0", pool="big")  # the other pool's queue has room
    assert (publisher.depth("lite"), publisher.depth("big")) == (3, 1)

    # A worker of pool big consumes big's queue only, and dead-letters into big's dead-letter queue.
    consumer = track(connect_consumer(pooled.model_copy(update={"pool": "big"})))
    consumer.start()
    delivery = consumer.get(timeout=10)
    assert delivery is not None and delivery.message_id == "big-0"
    assert consumer.get(timeout=0.5) is None
    delivery.reject(requeue=False)
    handed: list[DeadLetter] = []
    dead_letters = track(connect_dead_letters(pooled.model_copy(update={"pool": "big"})))
    dead_letters.start(lambda dead: handed.append(dead) is None)
    wait_for(lambda: handed, 10, "big's dead letter")
    assert [d.message_id for d in handed] == ["big-0"]
    assert ready_count(admin, dead_letter_queue(lite)) == 0 and ready_count(admin, lite) == 3
    assert ready_count(admin, big) == 0


def test_finished_notices_of_every_pool_reach_one_listener(pooled, track):
    heard: list[list[str]] = []
    listener = track(connect_listener(pooled))
    listener.start(heard.append, lambda: None)
    wait_for(lambda: listener.connected, 10, "the listener to connect")
    lite_id, big_id = "a" * 32, "b" * 32
    for pool, job_id in (("lite", lite_id), ("big", big_id)):
        consumer = track(connect_consumer(pooled.model_copy(update={"pool": pool})))
        consumer.start()
        wait_for(lambda c=consumer: c.connected, 10, f"{pool}'s consumer to connect")
        consumer.announce_finished([job_id])
    wait_for(lambda: len(heard) == 2, 10, "both notices")
    assert sorted(heard) == [[lite_id], [big_id]]


def test_an_unexpected_error_in_the_notice_sender_does_not_end_later_notices(settings, track, monkeypatch):
    publish = NoticeSender._publish
    calls = {"n": 0}

    def publish_failing_once(self, body):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("a bug while sending the first notice")
        return publish(self, body)

    monkeypatch.setattr(NoticeSender, "_publish", publish_failing_once)
    consumer = track(connect_consumer(settings))
    consumer.start()
    wait_for(lambda: consumer.connected, 10, "the consumer to connect")
    heard = listening(settings, track)
    job_id = uuid.uuid4().hex
    deadline = time.monotonic() + 15
    while [job_id] not in heard.notices:  # the first notice meets the bug and is dropped
        assert time.monotonic() < deadline, "the notice sender stopped after an unexpected error"
        consumer.announce_finished([job_id])
        time.sleep(0.3)
    assert calls["n"] >= 2


def test_a_publish_the_broker_never_confirms_is_refused_in_time(settings, outage, track, monkeypatch):
    monkeypatch.setattr(publisher_module, "CONFIRM_TIMEOUT_S", 1.0)
    publisher = track(connect_publisher(via(outage, settings)))
    publisher.publish(b"{}", message_id="confirmed")
    outage.stall()  # the message goes nowhere and no confirm comes back, as from a queue without quorum
    refused: list[BaseException] = []

    def publish() -> None:
        try:
            publisher.publish(b"{}", message_id="never-confirmed")
        except BrokerUnavailable as exc:
            refused.append(exc)

    caller = threading.Thread(target=publish, daemon=True)
    caller.start()
    caller.join(15)
    outage.resume()
    assert not caller.is_alive(), "the publish is still waiting for a confirm"
    assert len(refused) == 1 and "no confirm within" in str(refused[0])
