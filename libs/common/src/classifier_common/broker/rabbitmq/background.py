"""A consumer on a background thread with a blocking connection of its own: the shape the
finished-job listener and the dead-letter reconciler share (connect, set up, consume until
closed; reconnect with capped backoff; stop from any thread)."""

from __future__ import annotations

import logging
import threading

import pika
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection

from classifier_common.broker.rabbitmq.connection import (
    BACKOFF_MAX_S,
    BACKOFF_MIN_S,
    CONNECTION_ERRORS,
    close_quietly,
    describe,
)

log = logging.getLogger(__name__)


class BackgroundConsumer:
    """Subclasses name their ``role`` and set up the channel in :meth:`_set_up` (declare, bind,
    ``basic_consume``); :meth:`_on_connected` and :meth:`_on_disconnected` run around each
    connection's consuming."""

    role = "consumer"

    def __init__(self, params: pika.ConnectionParameters):
        self._params = params
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()
        self._lock = threading.Lock()  # guards _connection and _channel against close()
        self._connection: BlockingConnection | None = None
        self._channel: BlockingChannel | None = None
        self._connected = False

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

    def _start_thread(self, name: str) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _set_up(self, connection: BlockingConnection, channel: BlockingChannel) -> None:
        raise NotImplementedError

    def _on_connected(self) -> None:
        pass

    def _on_disconnected(self) -> None:
        pass

    def _run(self) -> None:
        backoff = BACKOFF_MIN_S
        while not self._closing.is_set():
            try:
                self._consume()
                backoff = BACKOFF_MIN_S
            except Exception as exc:  # noqa: BLE001 - a broker error, or a bug in a handler: consume again
                if self._closing.is_set():
                    return
                log.warning("%s disconnected from RabbitMQ: %s", self.role, describe(exc))
            if self._closing.wait(backoff):
                return
            backoff = min(backoff * 2, BACKOFF_MAX_S)

    def _consume(self) -> None:
        connection = BlockingConnection(self._params)
        try:
            channel = connection.channel()
            self._set_up(connection, channel)
            with self._lock:
                self._connection, self._channel = connection, channel
            if self._closing.is_set():
                return
            self._connected = True
            self._on_connected()
            channel.start_consuming()
        finally:
            self._connected = False
            self._on_disconnected()
            with self._lock:
                self._connection = self._channel = None
            close_quietly(connection)
