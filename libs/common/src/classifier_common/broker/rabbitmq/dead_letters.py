"""The dead-letter queue's consumer (the workers' reconciler)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection
from pika.spec import Basic, BasicProperties

from classifier_common.broker.base import DeadLetter
from classifier_common.broker.rabbitmq.background import BackgroundConsumer
from classifier_common.broker.rabbitmq.connection import (
    connection_parameters,
    where,
)
from classifier_common.broker.rabbitmq.topology import Topology
from classifier_common.config import Settings

log = logging.getLogger(__name__)

# Dead letters a reconciler holds at once; one it could not handle comes back after a pause.
DEAD_LETTER_PREFETCH = 10
DEAD_LETTER_RETRY_S = 1.0


def dead_letter_from(properties: BasicProperties, body: bytes) -> DeadLetter:
    """What RabbitMQ says about a dead-lettered message: the first ``x-death`` entry is the
    latest dead-lettering, with its reason and (for a delivery limit) the deliveries it had."""
    headers = properties.headers or {}
    deaths = headers.get("x-death") or [{}]
    latest = deaths[0] if isinstance(deaths[0], dict) else {}
    reason = latest.get("reason") or headers.get("x-first-death-reason") or "unknown"
    if isinstance(reason, bytes):
        reason = reason.decode("utf-8", "replace")
    count = headers.get("x-delivery-count", 0)
    return DeadLetter(body, properties.message_id, str(reason), int(count) if isinstance(count, int) else 0)


class RabbitDeadLetterConsumer(BackgroundConsumer):
    """Consumes the dead-letter queue of ``settings.pool`` (``<queue_name>.<pool>.dead``) on a
    background thread, with a connection of its own, handing each message to ``handle``; acks it
    when ``handle`` says done, gives it back after a pause when not. Reconnects with capped
    backoff. Several workers may consume it: each message goes to one."""

    role = "dead-letter consumer"

    def __init__(self, settings: Settings):
        self._topology = Topology.from_settings(settings)
        super().__init__(
            connection_parameters(
                settings.broker_url, f"classifier dead-letters queue={self._topology.queue} pid={os.getpid()}"
            )
        )
        self._handle: Callable[[DeadLetter], bool] = lambda _dead: False

    def start(self, handle: Callable[[DeadLetter], bool]) -> None:
        self._handle = handle
        self._start_thread("dead-letters")

    def _set_up(self, connection: BlockingConnection, channel: BlockingChannel) -> None:
        self._topology.declare(channel)
        channel.basic_qos(prefetch_count=DEAD_LETTER_PREFETCH)
        handle = self._handle

        def on_message(ch: BlockingChannel, method: Basic.Deliver, properties: BasicProperties, body: bytes) -> None:
            if handle(dead_letter_from(properties, body)):
                ch.basic_ack(method.delivery_tag)
            else:
                connection.sleep(DEAD_LETTER_RETRY_S)  # services heartbeats while it waits
                ch.basic_nack(method.delivery_tag, requeue=True)

        channel.basic_consume(self._topology.dead_queue, on_message, auto_ack=False)

    def _on_connected(self) -> None:
        log.info("reconciling dead letters from %s at %s", self._topology.dead_queue, where(self._params))
