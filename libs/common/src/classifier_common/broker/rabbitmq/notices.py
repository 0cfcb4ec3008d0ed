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
from classifier_common.broker.rabbitmq.background import BackgroundConsumer
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
from classifier_common.broker.rabbitmq.topology import Exchange, finished_notices, listen_to
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
        self._blocked = False  # the broker said Connection.Blocked and not yet Unblocked

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
                except Exception:  # noqa: BLE001 - a bug must not end every later notice
                    log.exception("finished-job notices: unexpected error; reconnecting")
                    self._disconnect()
        finally:
            self._disconnect()

    def _publish(self, body: bytes) -> None:
        if self._channel is None or not self._channel.is_open:
            if time.monotonic() < self._next_attempt:
                return  # reconnecting later: this notice is dropped
            self._connect()
        if self._blocked:
            # The broker reads nothing from a blocked connection: what is written now is lost
            # when the blocked-connection timeout drops it. Dropped here instead, at no cost.
            self._connection.process_data_events(time_limit=0)  # type: ignore[union-attr]
            return
        assert self._channel is not None
        self._channel.basic_publish(self._exchange.name, "", body)

    def _connect(self) -> None:
        self._disconnect()
        try:
            connection = BlockingConnection(self._params)
            try:
                connection.add_on_connection_blocked_callback(lambda *_: self._set_blocked(True))
                connection.add_on_connection_unblocked_callback(lambda *_: self._set_blocked(False))
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

    def _set_blocked(self, blocked: bool) -> None:
        if blocked != self._blocked:
            log.info("finished-job notices: connection %s by the broker", "blocked" if blocked else "unblocked")
        self._blocked = blocked

    def _disconnect(self) -> None:
        self._blocked = False
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None:
            close_quietly(connection)


class RabbitFinishedListener(BackgroundConsumer):
    """Binds an exclusive, auto-deleted queue to the finished exchange and hands each notice's job
    ids to ``on_finished``, on a background thread. Reconnects with capped backoff; calls
    ``on_connected`` after each (re)connect, since notices sent in between were lost."""

    role = "finished-job listener"

    def __init__(self, settings: Settings):
        self._exchange = finished_notices(settings.queue_name)
        super().__init__(
            connection_parameters(
                settings.broker_url, f"classifier finished-listener queue={settings.queue_name} pid={os.getpid()}"
            )
        )
        self._on_finished: Callable[[list[str]], None] = lambda _ids: None
        self._on_connected_callback: Callable[[], None] = lambda: None

    def start(self, on_finished: Callable[[list[str]], None], on_connected: Callable[[], None]) -> None:
        self._on_finished, self._on_connected_callback = on_finished, on_connected
        self._start_thread("finished-listener")

    def _set_up(self, connection: BlockingConnection, channel: BlockingChannel) -> None:
        queue_name = listen_to(channel, self._exchange)
        on_finished = self._on_finished
        channel.basic_consume(
            queue_name, lambda _ch, _method, _props, body: on_finished(decode_finished(body)), auto_ack=True
        )

    def _on_connected(self) -> None:
        metrics.FINISHED_LISTENER_CONNECTED.set(1)
        log.info("listening for finished jobs on %s at %s", self._exchange.name, where(self._params))
        self._on_connected_callback()

    def _on_disconnected(self) -> None:
        metrics.FINISHED_LISTENER_CONNECTED.set(0)
