"""The RabbitMQ publisher's queue counts (the operator view) against the real broker, on a queue
of this test's own (``test.<uuid>``, deleted afterwards)."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator

import pika
import pytest

from classifier_common.broker import connect_consumer, connect_publisher
from classifier_common.broker.base import dead_letter_queue
from classifier_common.broker.rabbitmq import RabbitPublisher
from classifier_common.config import Settings
from classifier_common.errors import BrokerUnavailable
from devstack.ports import free_port
from devstack.stack import delete_job_queues
from tests.utils.file_server import file_server

pytestmark = pytest.mark.rabbitmq

AMQP_URL = os.environ.get("CLASSIFIER_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


def delete_queue(name: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        connection.channel().queue_delete(name)
    finally:
        connection.close()


@pytest.fixture
def settings() -> Iterator[Settings]:
    queue = f"test.{uuid.uuid4().hex[:12]}"
    yield Settings(broker_url=AMQP_URL, queue_name=queue, queue_max_length=100, prefetch=2)
    delete_job_queues(AMQP_URL, queue)


def test_ready_consumers_and_dead_letters(settings: Settings) -> None:
    publisher = connect_publisher(settings)
    assert isinstance(publisher, RabbitPublisher)
    consumer = connect_consumer(settings)
    try:
        for i in range(3):
            publisher.publish(b"{}", message_id=f"job-{i}")
        counts = publisher.queue_counts()
        assert (counts.ready, counts.unacked, counts.consumers, counts.dead_letters) == (3, None, 0, 0)

        consumer.start()
        delivery = consumer.get(timeout=10)
        assert delivery is not None
        delivery.reject(requeue=False)  # to the dead-letter queue, from the consumer's I/O thread
        deadline = time.monotonic() + 10
        while (counts := publisher.queue_counts()).dead_letters == 0:
            assert time.monotonic() < deadline, counts
            time.sleep(0.05)
        assert counts.consumers == 1
        assert counts.dead_letters == 1
        assert counts.ready <= 2  # the consumer holds up to its prefetch of the rest

        # A queue nobody declared (its dead-letter queue deleted under it): BrokerUnavailable, and
        # the publisher goes on working.
        delete_queue(dead_letter_queue(settings.queue_for_pool(settings.pool)))
        with pytest.raises(BrokerUnavailable):
            publisher.queue_counts()
        with pytest.raises(ValueError, match="no queue for pool"):
            publisher.queue_counts("nowhere")
        publisher.publish(b"{}", message_id="job-after")
    finally:
        consumer.close()
        publisher.close()


def test_unacked_from_the_management_api_when_configured(settings: Settings) -> None:
    """AMQP does not say how many messages the workers hold; the management API does. Served
    here by a plain HTTP server answering the API's path for this queue; then an unreachable one."""
    queue = settings.queue_for_pool(settings.pool)
    path = f"/api/queues/%2F/{queue}"
    answer = json.dumps({"name": queue, "messages_ready": 3, "messages_unacknowledged": 4}).encode()
    with file_server({path: answer}) as api:
        with_api = settings.model_copy(update={"rabbitmq_management_url": f"http://guest:guest@{api.url[7:]}"})
        publisher = connect_publisher(with_api)
        try:
            assert publisher.queue_counts().unacked == 4
            assert api.requested == [path]
        finally:
            publisher.close()
    unreachable = settings.model_copy(update={"rabbitmq_management_url": f"http://127.0.0.1:{free_port()}"})
    publisher = connect_publisher(unreachable)
    try:
        counts = publisher.queue_counts()
        assert (counts.ready, counts.unacked) == (0, None)
    finally:
        publisher.close()
