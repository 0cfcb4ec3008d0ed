"""The RabbitMQ adapters during a resource alarm, on a RabbitMQ node of this module's own
(tests/utils/rabbitmq_node.py): the machine's shared broker is never alarmed.

During a memory or disk alarm RabbitMQ blocks each connection that publishes and stops reading
from it. A worker that announced its finished jobs on the connection it consumes on had its acks
stall with it: after the client's blocked-connection timeout (5 s) the connection was dropped
and the deliveries it held came back with their delivery count raised.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from classifier_common.broker import connect_consumer, connect_listener
from classifier_common.broker.rabbitmq import RabbitPublisher
from classifier_common.config import Settings
from classifier_common.errors import BrokerUnavailable
from tests.utils.rabbitmq_node import RabbitNode, rabbit_node

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]

MESSAGES = 12


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitNode]:
    with rabbit_node(tmp_path_factory.mktemp("rabbitmq-node")) as started:
        yield started


@pytest.fixture
def settings(node: RabbitNode) -> Settings:
    return Settings(
        broker_url=node.url,
        queue_name=f"test.{uuid.uuid4().hex[:12]}",
        queue_max_length=100,
        max_attempts=3,
        prefetch=4,
    )


def test_acks_keep_flowing_during_a_memory_alarm(node: RabbitNode, settings: Settings, tmp_path: Path) -> None:
    publisher = RabbitPublisher(settings)
    consumer = connect_consumer(settings)
    heard: list[list[str]] = []
    listener = connect_listener(settings)
    try:
        for i in range(MESSAGES):
            publisher.publish(f"job {i}".encode(), message_id=f"m{i}")
        listener.start(heard.append, lambda: None)
        consumer.start()
        deadline = time.monotonic() + 30
        while not (listener.connected and consumer.connected):
            assert time.monotonic() < deadline, "the listener and the consumer did not connect"
            time.sleep(0.1)
        with node.memory_alarm():
            with pytest.raises(BrokerUnavailable):  # publishing is what the alarm stops
                publisher.publish(b"refused", message_id="during-the-alarm")
            counts = []
            deadline = time.monotonic() + 30
            while len(counts) < MESSAGES:
                assert time.monotonic() < deadline, f"only {len(counts)} deliveries acked during the alarm"
                delivery = consumer.get(timeout=0.5)
                if delivery is None:
                    continue
                counts.append(delivery.delivery_count)
                delivery.ack()
                consumer.announce_finished([uuid.uuid4().hex])  # as the worker does after each batch
            time.sleep(6)  # past the client's blocked-connection timeout
            assert node.queue_counts(settings.queue_for_pool(settings.pool)) == (0, 0), "acks did not reach the broker"
            assert consumer.connected
        assert counts == [1] * MESSAGES, "deliveries came back: the consuming connection was dropped"
        # The notices held back by the alarm are best effort; once it clears they flow again.
        # Generous deadlines: on a loaded machine the listener or the sender may be between
        # reconnects (capped backoff) when the alarm clears.
        heard.clear()
        job_id = uuid.uuid4().hex
        deadline = time.monotonic() + 90
        while [job_id] not in heard:
            assert time.monotonic() < deadline, f"no notice after the alarm (listener up: {listener.connected})"
            consumer.announce_finished([job_id])
            time.sleep(0.5)
    finally:
        consumer.close()
        listener.close()
        publisher.close()
