"""The dead-letter queue's consumer (the workers' reconciler)."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection
from pika.spec import Basic, BasicProperties

from classifier_common.broker.base import DeadLetter
from classifier_common.broker.rabbitmq.connection import (
    BACKOFF_MAX_S,
    BACKOFF_MIN_S,
    CONNECTION_ERRORS,
    close_quietly,
    connection_parameters,
    describe,
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


class RabbitDeadLetterConsumer:
    """Consumes ``<queue>.dead`` on a background thread, with a connection of its own, handing each
    message to ``handle``; acks it when ``handle`` says done, gives it back after a pause when not.
    Reconnects with capped backoff. Several workers may consume it: each message goes to one."""

    def __init__(self, settings: Settings):
        self._topology = Topology.from_settings(settings)
        self._params = connection_parameters(
            settings.broker_url, f"classifier dead-letters queue={settings.queue_name} pid={os.getpid()}"
        )
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()
        self._lock = threading.Lock()  # guards _connection and _channel against close()
        self._connection: BlockingConnection | None = None
        self._channel: BlockingChannel | None = None
        self._connected = False

    def start(self, handle: Callable[[DeadLetter], bool]) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, args=(handle,), name="dead-letters", daemon=True)
        self._thread.start()

    @property
    def connected(self) -> bool:
        return self._connected

    def close(self, timeout: float = 5.0) -> None:
        self._closing.set()
        with self._lock:
            connection, channel = self._connection, self._channel
        if connection is not None and channel is not None:
            try:
                connection.add_callback_threadsafe(channel.stop_consuming)
            except CONNECTION_ERRORS:
                pass  # already closed: the thread is on its way out
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self, handle: Callable[[DeadLetter], bool]) -> None:
        backoff = BACKOFF_MIN_S
        while not self._closing.is_set():
            try:
                self._consume(handle)
                backoff = BACKOFF_MIN_S
            except Exception as exc:  # noqa: BLE001 - a broker error, or a bug in handle: consume again
                if self._closing.is_set():
                    return
                log.warning("dead-letter consumer disconnected from RabbitMQ: %s", describe(exc))
            if self._closing.wait(backoff):
                return
            backoff = min(backoff * 2, BACKOFF_MAX_S)

    def _consume(self, handle: Callable[[DeadLetter], bool]) -> None:
        connection = BlockingConnection(self._params)
        try:
            channel = connection.channel()
            self._topology.declare(channel)
            channel.basic_qos(prefetch_count=DEAD_LETTER_PREFETCH)

            def on_message(
                ch: BlockingChannel, method: Basic.Deliver, properties: BasicProperties, body: bytes
            ) -> None:
                if handle(dead_letter_from(properties, body)):
                    ch.basic_ack(method.delivery_tag)
                else:
                    connection.sleep(DEAD_LETTER_RETRY_S)  # services heartbeats while it waits
                    ch.basic_nack(method.delivery_tag, requeue=True)

            channel.basic_consume(self._topology.dead_queue, on_message, auto_ack=False)
            with self._lock:
                self._connection, self._channel = connection, channel
            if self._closing.is_set():
                return
            self._connected = True
            log.info("reconciling dead letters from %s at %s", self._topology.dead_queue, where(self._params))
            channel.start_consuming()
        finally:
            self._connected = False
            with self._lock:
                self._connection = self._channel = None
            close_quietly(connection)
