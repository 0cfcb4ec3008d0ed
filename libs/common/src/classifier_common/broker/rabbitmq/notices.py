"""Finished-job notices: the workers' sender and the results service's listener. Best effort: a
notice only hurries a long-poll along, which looks at the store each second anyway."""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable

import pika
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection

from classifier_common import metrics
from classifier_common.broker.base import decode_finished
from classifier_common.broker.rabbitmq.connection import (
    BACKOFF_MAX_S,
    BACKOFF_MIN_S,
    CONNECTION_ERRORS,
    KEEPALIVE_INTERVAL_S,
    close_quietly,
    connection_parameters,
    describe,
    where,
)
from classifier_common.broker.rabbitmq.topology import Exchange, finished_notices
from classifier_common.config import Settings

log = logging.getLogger(__name__)

# Finished-job notices waiting for their connection; beyond this (the broker blocks publishes
# during an alarm) new ones are dropped: a notice only hurries a long-poll along.
NOTICE_BACKLOG = 1_000


class NoticeSender:
    """Publishes finished-job notices from a thread of its own, on a connection of its own.

    Never on the consuming connection: during a memory or disk alarm RabbitMQ blocks every
    connection that publishes, and stops reading from it, acks included; after
    ``blocked_connection_timeout`` the client drops it and the deliveries it held come back with
    their delivery count raised. A connection that only consumes and acks is never blocked, so
    workers keep draining the queue, which is what clears a memory alarm.

    Best effort, as notices are: :meth:`send` never blocks; a notice is dropped when the backlog
    is full or the broker unreachable (the long-poll looks at the store each second anyway).
    """

    def __init__(self, params: pika.ConnectionParameters, exchange: Exchange):
        self._params = params
        self._exchange = exchange
        self._backlog: queue.Queue[bytes] = queue.Queue(maxsize=NOTICE_BACKLOG)
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="finished-notices", daemon=True)
        self._connection: BlockingConnection | None = None
        self._channel: BlockingChannel | None = None
        self._next_attempt = 0.0
        self._backoff = BACKOFF_MIN_S

    def start(self) -> None:
        self._thread.start()

    def send(self, body: bytes) -> None:
        try:
            self._backlog.put_nowait(body)
        except queue.Full:
            log.debug("finished-job notice dropped: %d waiting already", NOTICE_BACKLOG)

    def close(self, timeout: float = 5.0) -> None:
        self._closing.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        try:
            # On close, what is already waiting still goes out (the last batch's notices).
            while not (self._closing.is_set() and self._backlog.empty()):
                try:
                    body = self._backlog.get(timeout=KEEPALIVE_INTERVAL_S)
                except queue.Empty:
                    body = None
                try:
                    if body is not None:
                        self._publish(body)
                    elif self._connection is not None:
                        self._connection.process_data_events(time_limit=0)  # heartbeats
                except CONNECTION_ERRORS as exc:
                    log.info("finished-job notices: connection lost (%s)", describe(exc))
                    self._disconnect()
        finally:
            self._disconnect()

    def _publish(self, body: bytes) -> None:
        if self._channel is None or not self._channel.is_open:
            if time.monotonic() < self._next_attempt:
                return  # reconnecting later: this notice is dropped
            self._connect()
        assert self._channel is not None
        self._channel.basic_publish(self._exchange.name, "", body)

    def _connect(self) -> None:
        self._disconnect()
        try:
            connection = BlockingConnection(self._params)
            try:
                channel = connection.channel()
                self._exchange.declare(channel)
            except BaseException:
                close_quietly(connection)
                raise
        except CONNECTION_ERRORS:
            self._next_attempt = time.monotonic() + self._backoff
            self._backoff = min(self._backoff * 2, BACKOFF_MAX_S)
            raise
        self._connection, self._channel = connection, channel
        self._backoff = BACKOFF_MIN_S

    def _disconnect(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None:
            close_quietly(connection)


class RabbitFinishedListener:
    """Binds an exclusive, auto-deleted queue to the finished exchange and hands each notice's job
    ids to ``on_finished``, on a background thread. Reconnects with capped backoff; calls
    ``on_connected`` after each (re)connect, since notices sent in between were lost."""

    def __init__(self, settings: Settings):
        self._exchange = finished_notices(settings.queue_name)
        self._params = connection_parameters(
            settings.broker_url, f"classifier finished-listener queue={settings.queue_name} pid={os.getpid()}"
        )
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()
        self._lock = threading.Lock()  # guards _connection and _channel against close()
        self._connection: BlockingConnection | None = None
        self._channel: BlockingChannel | None = None
        self._connected = False

    def start(self, on_finished: Callable[[list[str]], None], on_connected: Callable[[], None]) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._run, args=(on_finished, on_connected), name="finished-listener", daemon=True
        )
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

    def _run(self, on_finished: Callable[[list[str]], None], on_connected: Callable[[], None]) -> None:
        backoff = BACKOFF_MIN_S
        while not self._closing.is_set():
            try:
                self._listen(on_finished, on_connected)
                backoff = BACKOFF_MIN_S
            except Exception as exc:  # noqa: BLE001 - a broker error, or a bug in on_finished: listen again
                if self._closing.is_set():
                    return
                log.warning("finished-job listener disconnected from RabbitMQ: %s", describe(exc))
            if self._closing.wait(backoff):
                return
            backoff = min(backoff * 2, BACKOFF_MAX_S)

    def _listen(self, on_finished: Callable[[list[str]], None], on_connected: Callable[[], None]) -> None:
        connection = BlockingConnection(self._params)
        try:
            channel = connection.channel()
            self._exchange.declare(channel)
            queue_name = channel.queue_declare("", exclusive=True, auto_delete=True).method.queue
            channel.queue_bind(queue_name, self._exchange.name)
            channel.basic_consume(
                queue_name, lambda _ch, _method, _props, body: on_finished(decode_finished(body)), auto_ack=True
            )
            with self._lock:
                self._connection, self._channel = connection, channel
            if self._closing.is_set():
                return
            self._connected = True
            metrics.FINISHED_LISTENER_CONNECTED.set(1)
            log.info("listening for finished jobs on %s at %s", self._exchange.name, where(self._params))
            on_connected()
            channel.start_consuming()
        finally:
            self._connected = False
            metrics.FINISHED_LISTENER_CONNECTED.set(0)
            with self._lock:
                self._connection = self._channel = None
            close_quietly(connection)
