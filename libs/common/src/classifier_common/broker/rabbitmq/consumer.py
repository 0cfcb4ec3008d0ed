"""The workers' side of the job queue: an asynchronous consumer (pika's callback chain on a thread
of its own) behind a reconnecting wrapper."""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import pika
import pika.exceptions
from pika.channel import Channel
from pika.spec import Basic, BasicProperties

from classifier_common.broker.base import encode_finished
from classifier_common.broker.rabbitmq.connection import (
    BACKOFF_MAX_S,
    BACKOFF_MIN_S,
    BrokerRefused,
    connection_parameters,
    describe,
    is_fatal,
    where,
)
from classifier_common.broker.rabbitmq.notices import NoticeSender
from classifier_common.broker.rabbitmq.topology import Topology, finished_notices
from classifier_common.config import Settings

log = logging.getLogger(__name__)


class RabbitDelivery:
    """One message handed to a worker. ``ack``/``reject`` may be called from any thread; they run
    on the connection's I/O thread and are dropped if the channel they came on is gone (the
    broker then delivers the message again)."""

    def __init__(
        self,
        session: _ConsumerSession,
        channel: Channel,
        method: Basic.Deliver,
        properties: BasicProperties,
        body: bytes,
    ):
        self.body = body
        self.redelivered = bool(method.redelivered)
        # The quorum queue's header counts earlier deliveries.
        earlier = (properties.headers or {}).get("x-delivery-count", 0)
        self.delivery_count = int(earlier) + 1
        self.message_id: str | None = properties.message_id
        self._session = session
        self._channel = channel
        self._tag = method.delivery_tag
        self._settled = False
        self._lock = threading.Lock()

    @property
    def stale(self) -> bool:
        """Its channel is closed: it cannot be acked and the broker will deliver it again."""
        return not self._channel.is_open

    def ack(self) -> None:
        self._settle("ack", lambda channel: channel.basic_ack(self._tag))

    def reject(self, requeue: bool) -> None:
        self._settle(f"reject(requeue={requeue})", lambda channel: channel.basic_reject(self._tag, requeue=requeue))

    def _settle(self, what: str, action: Callable[[Channel], None]) -> None:
        with self._lock:
            if self._settled:
                # A second ack of one tag would make the broker close the whole channel.
                log.warning("%s of message %s ignored: already acked or rejected", what, self.message_id)
                return
            self._settled = True

        def on_io_thread() -> None:
            if self._channel.is_open:
                action(self._channel)
            else:
                log.debug("%s of message %s dropped: its channel is gone", what, self.message_id)

        if not self._session.call_threadsafe(on_io_thread):
            log.debug("%s of message %s dropped: its connection is gone", what, self.message_id)


class _ConsumerSession:
    """One connection's life, run by pika's callbacks on the consumer thread:
    open -> channel -> declare topology -> qos(prefetch) -> consume -> message.

    ``run`` returns when the connection closes, for whatever reason; the reconnecting wrapper
    (:class:`RabbitConsumer`) decides what happens next.
    """

    def __init__(
        self,
        params: pika.ConnectionParameters,
        topology: Topology,
        prefetch: int,
        deliveries: queue.Queue[RabbitDelivery],
    ):
        self._params = params
        self._topology = topology
        self._prefetch = prefetch
        self._deliveries = deliveries
        self._connection: pika.SelectConnection | None = None
        self._channel: Channel | None = None
        self._consumer_tag: str | None = None
        self._lock = threading.Lock()  # guards _alive and _connection against other threads
        self._alive = True
        self._closing = False
        self._cancel_wanted = False
        self.cancelled = threading.Event()
        self.ready = False  # consuming (or stopped consuming) on an open channel
        self.reached_consuming = False
        self.fatal: BaseException | None = None

    # -- called from other threads

    def call_threadsafe(self, callback: Callable[[], None]) -> bool:
        """Run ``callback`` on the I/O thread; False once this connection's loop is gone."""
        with self._lock:
            if not self._alive or self._connection is None:
                return False
            self._connection.ioloop.add_callback_threadsafe(callback)
            return True

    def request_cancel(self) -> None:
        self._cancel_wanted = True
        if not self.call_threadsafe(self._cancel):
            self.cancelled.set()

    def request_close(self) -> None:
        with self._lock:
            self._closing = True
        self.call_threadsafe(self._close_connection)

    # -- the consumer thread

    def run(self) -> None:
        with self._lock:
            if self._closing:
                self._alive = False
                return
            self._connection = pika.SelectConnection(
                self._params,
                on_open_callback=self._on_connection_open,
                on_open_error_callback=self._on_connection_open_error,
                on_close_callback=self._on_connection_closed,
            )
        try:
            self._connection.ioloop.start()
        finally:
            with self._lock:
                self._alive = False
            self.ready = False
            self.cancelled.set()
            self._connection.ioloop.close()

    def _on_connection_open(self, connection: pika.SelectConnection) -> None:
        log.info("consumer connected to RabbitMQ at %s", where(self._params))
        connection.channel(on_open_callback=self._on_channel_open)

    def _on_connection_open_error(self, connection: pika.SelectConnection, error: BaseException) -> None:
        if is_fatal(error):
            self.fatal = error
        log.log(
            logging.ERROR if self.fatal else logging.INFO,
            "consumer cannot connect to RabbitMQ at %s: %s",
            where(self._params),
            describe(error),
        )
        connection.ioloop.stop()

    def _on_connection_closed(self, connection: pika.SelectConnection, reason: BaseException) -> None:
        self._channel = None
        self.ready = False
        if not isinstance(reason, pika.exceptions.ConnectionClosedByClient):
            log.warning("consumer connection to RabbitMQ closed: %s", describe(reason))
        connection.ioloop.stop()

    def _on_channel_open(self, channel: Channel) -> None:
        self._channel = channel
        channel.add_on_close_callback(self._on_channel_closed)
        self._topology.declare_async(channel, on_done=self._on_topology_declared)

    def _on_topology_declared(self) -> None:
        assert self._channel is not None
        self._channel.basic_qos(prefetch_count=self._prefetch, callback=self._on_qos_ok)

    def _on_qos_ok(self, _frame: Any) -> None:
        assert self._channel is not None
        self.ready = True
        if self._cancel_wanted:
            self.cancelled.set()
            return
        self._channel.add_on_cancel_callback(self._on_cancelled_by_broker)
        self._consumer_tag = self._channel.basic_consume(
            self._topology.queue, self._on_message, auto_ack=False, callback=self._on_consume_ok
        )

    def _on_consume_ok(self, _frame: Any) -> None:
        self.reached_consuming = True
        log.info("consuming from %s (prefetch %d)", self._topology.queue, self._prefetch)

    def _on_message(self, channel: Channel, method: Basic.Deliver, properties: BasicProperties, body: bytes) -> None:
        self._deliveries.put(RabbitDelivery(self, channel, method, properties, body))

    def _on_cancelled_by_broker(self, _frame: Any) -> None:
        # The queue was deleted or its leader moved away: a fresh connection declares it again.
        log.warning("RabbitMQ cancelled the consumer on %s; reconnecting", self._topology.queue)
        self._close_connection()

    def _on_channel_closed(self, channel: Channel, reason: BaseException) -> None:
        self.ready = False
        # Refused while declaring or subscribing (e.g. the queue exists with other arguments):
        # that will not heal. Once consuming, a channel error is worth a fresh connection.
        if not self.reached_consuming and is_fatal(reason):
            self.fatal = reason
            log.error("RabbitMQ refused the consumer's channel: %s", describe(reason))
        elif not self._closing:
            log.warning("consumer channel closed: %s", describe(reason))
        self._close_connection()

    def _cancel(self) -> None:
        if self._channel is None or not self._channel.is_open or self._consumer_tag is None:
            self.cancelled.set()
            return
        self._channel.basic_cancel(self._consumer_tag, callback=lambda _frame: self.cancelled.set())

    def _close_connection(self) -> None:
        connection = self._connection
        if connection is not None and not (connection.is_closing or connection.is_closed):
            connection.close()


class RabbitConsumer:
    """Consumes the jobs queue of ``settings.pool`` on a background thread and hands deliveries out through
    :meth:`get`. Reconnects with capped backoff (0.5 s doubling to 10 s); stops for good on a
    refusal that will not heal, which :meth:`get` then raises as :class:`BrokerRefused`.
    Finished-job notices go out on a second connection (:class:`NoticeSender`)."""

    def __init__(self, settings: Settings):
        self._topology = Topology.from_settings(settings)
        self._prefetch = settings.prefetch
        self._params = connection_parameters(
            settings.broker_url, f"classifier consumer queue={self._topology.queue} pid={os.getpid()}"
        )
        self._notices = NoticeSender(
            connection_parameters(
                settings.broker_url, f"classifier notices queue={settings.queue_name} pid={os.getpid()}"
            ),
            finished_notices(settings.queue_name),
        )
        self._deliveries: queue.Queue[RabbitDelivery] = queue.Queue()
        self._session: _ConsumerSession | None = None
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()
        self._stopped_consuming = threading.Event()
        self._fatal: BaseException | None = None

    # -- the Consumer protocol

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="broker-consumer", daemon=True)
        self._thread.start()
        self._notices.start()

    def get(self, timeout: float) -> RabbitDelivery | None:
        deadline = time.monotonic() + timeout
        while True:
            if self._fatal is not None:
                raise BrokerRefused(f"RabbitMQ at {where(self._params)} refused: {describe(self._fatal)}")
            try:
                delivery = self._deliveries.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return None
            if delivery.stale:
                log.debug("skipping message %s from a closed channel", delivery.message_id)
                continue
            return delivery

    @property
    def connected(self) -> bool:
        session = self._session
        return session is not None and session.ready

    def stop_consuming(self, timeout: float = 5.0) -> None:
        """Cancel the subscription and wait (up to ``timeout``) for the broker's confirmation."""
        self._stopped_consuming.set()
        session = self._session
        if session is not None:
            session.request_cancel()
            if not session.cancelled.wait(timeout):
                log.warning("no cancel confirmation from RabbitMQ within %.1f s", timeout)

    def announce_finished(self, job_ids: list[str]) -> None:
        if job_ids:
            self._notices.send(encode_finished(job_ids))

    def close(self, timeout: float = 10.0) -> None:
        self._closing.set()
        self._notices.close()
        session = self._session
        if session is not None:
            session.request_close()  # after any ack already scheduled: callbacks run in order
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("consumer thread did not stop within %.1f s", timeout)
        # What is left here was never acked; the broker has put it back in the queue.
        while not self._deliveries.empty():
            self._deliveries.get_nowait()

    # -- the reconnecting loop (consumer thread)

    def _run(self) -> None:
        backoff = BACKOFF_MIN_S
        while True:
            session = _ConsumerSession(self._params, self._topology, self._prefetch, self._deliveries)
            self._session = session
            # Checked after publishing the session, so close()/stop_consuming() reach either
            # this check or the session.
            if self._closing.is_set() or self._stopped_consuming.is_set():
                return
            session.run()
            if session.fatal is not None:
                self._fatal = session.fatal
                log.error("consumer stopped: RabbitMQ refused it (%s); not retrying", describe(session.fatal))
                return
            # After stop_consuming there is nothing to reconnect for: what this worker still
            # holds cannot be acked on a new connection, and the broker redelivers it anyway.
            if self._closing.is_set() or self._stopped_consuming.is_set():
                return
            if session.reached_consuming:
                backoff = BACKOFF_MIN_S
            log.info("consumer reconnecting in %.1f s", backoff)
            if self._closing.wait(backoff):
                return
            backoff = min(backoff * 2, BACKOFF_MAX_S)
