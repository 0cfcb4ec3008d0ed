"""The job queue on RabbitMQ (pika): a pooled blocking publisher with confirms for the gateway,
an asynchronous consumer for the workers.

Topology, declared idempotently by both sides:

    <queue>           durable quorum queue: delivery limit, max length with reject-publish,
                      dead-lettering to classifier.dlx
    classifier.dlx    durable direct exchange  -> <queue>.dead (durable quorum queue)
    <queue>.finished  durable fanout exchange: workers publish the ids of the jobs they finished
                      (transient, no confirm, on a connection of their own: see
                      :class:`_NoticeSender`); each results service binds its own exclusive queue

What this module relies on in RabbitMQ 3.10 quorum queues (tests/common/broker/test_rabbitmq.py
checks each point against the real broker):

- ``x-delivery-count`` holds the number of earlier deliveries (0 or absent on the first one). A
  reject with requeue and a return caused by the consumer's channel closing both increase it.
- A message is dead-lettered on the return that makes its delivery count exceed
  ``x-delivery-limit``; a limit of ``max_deliveries - 1`` therefore allows exactly ``max_deliveries``
  deliveries (``Settings.delivery_limit``, one more than ``max_attempts``).
- ``x-max-length`` counts ready messages only, and reject-publish nacks a publish once the ready
  count is *over* the limit: a full queue holds ``max_length`` plus up to one message per channel
  that was publishing at that moment. The bound is a back-pressure limit, not an exact count.
- A passive ``queue.declare`` reports ready messages only (see :meth:`RabbitPublisher.depth`).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection
from pika.channel import Channel
from pika.spec import Basic, BasicProperties

from classifier_common import metrics
from classifier_common.broker.base import (
    DEAD_LETTER_EXCHANGE,
    DeadLetter,
    dead_letter_queue,
    decode_finished,
    encode_finished,
    finished_exchange,
)
from classifier_common.config import Settings
from classifier_common.errors import BrokerUnavailable, QueueFull

log = logging.getLogger(__name__)

# Reconnection backoff: 0.5 s doubling up to 10 s.
BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 10.0
# Publisher: connections (each with one confirm channel) shared by the gateway's threads. One
# channel waits for each confirm in turn; a few side by side let the quorum queue batch its
# writes (measured on 2 cores: ~1,300 confirmed publishes/s with one, ~3,000/s with four).
PUBLISH_POOL_SIZE = 4
# Idle publisher connections are serviced this often, so heartbeats flow and a connection the
# broker closed is noticed (and readiness turns false) within a second.
KEEPALIVE_INTERVAL_S = 1.0
# A caller waits at most this long for a free publisher channel before getting a 503.
CHECKOUT_TIMEOUT_S = 30.0
# Dead letters a reconciler holds at once; one it could not handle comes back after a pause.
DEAD_LETTER_PREFETCH = 10
DEAD_LETTER_RETRY_S = 1.0
# Finished-job notices waiting for their connection; beyond this (the broker blocks publishes
# during an alarm) new ones are dropped: a notice only hurries a long-poll along.
NOTICE_BACKLOG = 1_000

# Connection defaults that keep a caller from hanging on an unreachable or blocked broker;
# any of them given in the broker URL's query string wins.
_CONNECTION_DEFAULTS: dict[str, float | int] = {
    "connection_attempts": 1,
    "socket_timeout": 3.0,  # TCP connect
    "stack_timeout": 5.0,  # TCP + TLS + AMQP handshake
    "blocked_connection_timeout": 5.0,  # broker resource alarm: give up instead of waiting forever
}

# Reply codes that retrying will not fix: ACCESS_REFUSED, PRECONDITION_FAILED (the queue exists
# with other arguments), NOT_ALLOWED (vhost).
_FATAL_REPLY_CODES = frozenset({403, 406, 530})
# Everything a connection or channel can fail with; all of it heals by reconnecting, except what
# is_fatal() says.
_CONNECTION_ERRORS = (pika.exceptions.AMQPError, OSError)


class BrokerRefused(RuntimeError):
    """RabbitMQ refused us for a reason retrying will not fix: bad credentials, no access to the
    vhost, or the queue already declared with other arguments. Needs an operator."""


def is_fatal(error: BaseException | None) -> bool:
    if isinstance(
        error,
        (
            pika.exceptions.ProbableAuthenticationError,
            pika.exceptions.ProbableAccessDeniedError,
            pika.exceptions.AuthenticationError,
        ),
    ):
        return True
    if isinstance(error, (pika.exceptions.ChannelClosedByBroker, pika.exceptions.ConnectionClosedByBroker)):
        return error.reply_code in _FATAL_REPLY_CODES
    return False


def describe(error: BaseException) -> str:
    if isinstance(error, pika.exceptions.AMQPError):
        return repr(error)  # pika's repr names the class and the cause; its str is often empty
    return f"{type(error).__name__}: {error}"


def connection_parameters(url: str, connection_name: str) -> pika.URLParameters:
    """pika parameters from the broker URL, with our timeouts unless the URL sets them, and a
    connection name that shows in the management UI and ``rabbitmqctl list_connections``."""
    params = pika.URLParameters(url)
    given = parse_qs(urlsplit(url).query)
    for name, value in _CONNECTION_DEFAULTS.items():
        if name not in given:
            setattr(params, name, value)
    params.client_properties = {"connection_name": connection_name}
    return params


def _where(params: pika.ConnectionParameters) -> str:
    """The broker's address for log lines, without credentials."""
    return f"{params.host}:{params.port}{params.virtual_host}"


@dataclass(frozen=True)
class Topology:
    queue: str
    max_length: int
    max_deliveries: int  # Settings.delivery_limit

    @classmethod
    def from_settings(cls, settings: Settings) -> Topology:
        return cls(settings.queue_name, settings.queue_max_length, settings.delivery_limit)

    @property
    def dead_queue(self) -> str:
        return dead_letter_queue(self.queue)

    @property
    def finished_exchange(self) -> str:
        return finished_exchange(self.queue)

    def queue_arguments(self) -> dict[str, Any]:
        return {
            "x-queue-type": "quorum",
            # Dead-lettered once the delivery count exceeds the limit: max_deliveries deliveries.
            "x-delivery-limit": self.max_deliveries - 1,
            "x-max-length": self.max_length,
            "x-overflow": "reject-publish",
            "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
            "x-dead-letter-routing-key": self.dead_queue,
        }

    def dead_queue_arguments(self) -> dict[str, Any]:
        return {"x-queue-type": "quorum"}

    def declare(self, channel: BlockingChannel) -> None:
        """The blocking-channel version; the consumer declares the same through callbacks."""
        channel.exchange_declare(DEAD_LETTER_EXCHANGE, exchange_type="direct", durable=True)
        channel.queue_declare(self.dead_queue, durable=True, arguments=self.dead_queue_arguments())
        channel.queue_bind(self.dead_queue, DEAD_LETTER_EXCHANGE, routing_key=self.dead_queue)
        channel.queue_declare(self.queue, durable=True, arguments=self.queue_arguments())
        channel.exchange_declare(self.finished_exchange, exchange_type="fanout", durable=True)


# --------------------------------------------------------------------------------------------
# Publisher


class _PublishChannel:
    """One connection with one confirm channel, opened lazily. pika's BlockingConnection is not
    thread-safe: every method here is called with ``lock`` held."""

    def __init__(self, params: pika.ConnectionParameters, topology: Topology):
        self.lock = threading.Lock()
        self._params = params
        self._topology = topology
        self._connection: BlockingConnection | None = None
        self._channel: BlockingChannel | None = None

    @property
    def is_open(self) -> bool:
        return self._channel is not None and self._channel.is_open

    def open(self) -> None:
        self.discard()
        connection = BlockingConnection(self._params)
        try:
            channel = connection.channel()
            self._topology.declare(channel)
            channel.confirm_delivery()
        except BaseException:
            _close_quietly(connection)
            raise
        self._connection, self._channel = connection, channel

    def publish(self, body: bytes, properties: BasicProperties) -> None:
        """Returns once the broker confirmed; NackError when the queue refused the message."""
        if not self.is_open:
            self.open()
        assert self._channel is not None
        self._channel.basic_publish(
            exchange="", routing_key=self._topology.queue, body=body, properties=properties, mandatory=True
        )

    def ready_count(self) -> int:
        if not self.is_open:
            self.open()
        assert self._channel is not None
        return self._channel.queue_declare(self._topology.queue, passive=True).method.message_count

    def keepalive(self) -> None:
        """Answer heartbeats and notice a connection the broker closed."""
        if self._connection is not None and self._connection.is_open:
            self._connection.process_data_events(time_limit=0)

    def discard(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None:
            _close_quietly(connection)


def _close_quietly(connection: BlockingConnection) -> None:
    try:
        if connection.is_open:
            connection.close()
    except _CONNECTION_ERRORS as exc:
        log.debug("closing a broken broker connection: %s", describe(exc))


class RabbitPublisher:
    """Publishes persistent JSON messages to the jobs queue and waits for the broker's confirm.

    Safe to call from many threads: each call takes one channel of a small pool for itself.
    A connection error is retried once on a fresh connection (so a message may be published
    twice, never lost: the message id is the job id and consumers skip finished jobs). When
    that fails too the publisher is *down*: calls raise :class:`BrokerUnavailable` at once while
    a background thread reconnects with capped backoff.
    """

    def __init__(self, settings: Settings, *, pool_size: int = PUBLISH_POOL_SIZE):
        self._topology = Topology.from_settings(settings)
        self._retry_after = settings.broker_retry_after_s
        self._params = connection_parameters(
            settings.broker_url, f"classifier publisher queue={settings.queue_name} pid={os.getpid()}"
        )
        self._channels = [_PublishChannel(self._params, self._topology) for _ in range(pool_size)]
        # LIFO: under light load the same connection serves everyone; the others stay unopened.
        self._idle: queue.LifoQueue[_PublishChannel] = queue.LifoQueue()
        for channel in reversed(self._channels):
            self._idle.put(channel)

        self._state_lock = threading.Lock()
        self._down_reason: str | None = None
        self._backoff = BACKOFF_MIN_S
        self._next_attempt = 0.0
        self._closing = threading.Event()

        # Errors that will not heal stop the service at start-up; an unreachable broker does not
        # (the gateway starts unready and recovers by itself).
        first = self._channels[0]
        with first.lock:
            try:
                first.open()
                log.info("publisher connected to RabbitMQ at %s", _where(self._params))
            except _CONNECTION_ERRORS as exc:
                if is_fatal(exc):
                    raise BrokerRefused(f"RabbitMQ at {_where(self._params)} refused: {describe(exc)}") from exc
                self._mark_down(exc)
        self._keeper = threading.Thread(target=self._keep, name="broker-publisher-keeper", daemon=True)
        self._keeper.start()

    # -- the Publisher protocol

    def publish(self, body: bytes, *, message_id: str) -> None:
        self._raise_if_down()
        properties = BasicProperties(
            delivery_mode=pika.DeliveryMode.Persistent, content_type="application/json", message_id=message_id
        )
        channel = self._checkout()
        try:
            with channel.lock:
                self._publish_retrying_once(channel, body, properties)
        finally:
            self._idle.put(channel)

    def ping(self) -> None:
        self._raise_if_down()

    def depth(self) -> int:
        """Messages *ready* in the jobs queue (AMQP reports no unacknowledged count: messages held
        by workers are not included). For readiness and metrics only."""
        self._raise_if_down()
        channel = self._checkout()
        try:
            with channel.lock:
                try:
                    return channel.ready_count()
                except _CONNECTION_ERRORS as exc:
                    channel.discard()
                    raise self._unavailable(exc) from exc
        finally:
            self._idle.put(channel)

    def close(self) -> None:
        self._closing.set()
        self._keeper.join(timeout=10)
        for channel in self._channels:
            with channel.lock:
                channel.discard()

    # -- internals

    def _publish_retrying_once(self, channel: _PublishChannel, body: bytes, properties: BasicProperties) -> None:
        try:
            channel.publish(body, properties)
            return
        except pika.exceptions.NackError as exc:
            raise self._queue_full() from exc
        except pika.exceptions.ConnectionBlockedTimeout as exc:
            # A resource alarm: a fresh connection would be blocked just the same.
            channel.discard()
            raise self._unavailable(exc) from exc
        except _CONNECTION_ERRORS as exc:
            log.warning("publish of %s failed (%s); reconnecting once", properties.message_id, describe(exc))
            channel.discard()
        try:
            channel.publish(body, properties)
        except pika.exceptions.NackError as exc:
            raise self._queue_full() from exc
        except _CONNECTION_ERRORS as exc:
            channel.discard()
            self._mark_down(exc)
            raise self._unavailable(exc) from exc

    def _checkout(self) -> _PublishChannel:
        try:
            return self._idle.get(timeout=CHECKOUT_TIMEOUT_S)
        except queue.Empty:
            raise BrokerUnavailable(
                f"every publisher channel stayed busy for {CHECKOUT_TIMEOUT_S:.0f} s", retry_after=self._retry_after
            ) from None

    def _queue_full(self) -> QueueFull:
        return QueueFull(
            f"the job queue is full ({self._topology.max_length} waiting); retry later", retry_after=self._retry_after
        )

    def _unavailable(self, error: BaseException | str) -> BrokerUnavailable:
        reason = error if isinstance(error, str) else describe(error)
        return BrokerUnavailable(f"the job queue is unavailable: {reason}", retry_after=self._retry_after)

    def _raise_if_down(self) -> None:
        if self._closing.is_set():
            raise self._unavailable("the publisher is closed")
        reason = self._down_reason
        if reason is not None:
            raise self._unavailable(reason)

    def _mark_down(self, error: BaseException) -> None:
        with self._state_lock:
            if self._down_reason is not None:
                return
            self._down_reason = describe(error)
            self._backoff = BACKOFF_MIN_S
            self._next_attempt = time.monotonic() + BACKOFF_MIN_S
        log.warning(
            "RabbitMQ at %s unreachable (%s); refusing publishes and reconnecting in the background",
            _where(self._params),
            describe(error),
        )

    def _keep(self) -> None:
        """Background: reconnect while down, otherwise keep idle connections alive."""
        while not self._closing.wait(self._seconds_to_next_tick()):
            try:
                if self._down_reason is not None:
                    self._try_reconnect()
                else:
                    self._keep_idle_alive()
            except Exception:  # the keeper must outlive any surprise; the next tick tries again
                log.exception("publisher keeper failed")

    def _seconds_to_next_tick(self) -> float:
        if self._down_reason is None:
            return KEEPALIVE_INTERVAL_S
        return min(KEEPALIVE_INTERVAL_S, max(0.0, self._next_attempt - time.monotonic()))

    def _try_reconnect(self) -> None:
        if time.monotonic() < self._next_attempt:
            return
        first = self._channels[0]
        with first.lock:
            try:
                first.open()
            except _CONNECTION_ERRORS as exc:
                with self._state_lock:
                    self._down_reason = describe(exc)
                    self._backoff = min(self._backoff * 2, BACKOFF_MAX_S)
                    self._next_attempt = time.monotonic() + self._backoff
                # A refusal needs an operator; the publisher keeps trying anyway (with the same
                # capped backoff) so that fixing the broker side heals a running gateway.
                level = logging.ERROR if is_fatal(exc) else logging.INFO
                log.log(level, "reconnect to RabbitMQ failed (%s); next try in %.1f s", describe(exc), self._backoff)
                return
        with self._state_lock:
            self._down_reason = None
        log.info("publisher reconnected to RabbitMQ at %s", _where(self._params))

    def _keep_idle_alive(self) -> None:
        for channel in self._channels:
            if not channel.lock.acquire(blocking=False):
                continue  # in use: a publish is servicing it
            try:
                channel.keepalive()
            except _CONNECTION_ERRORS as exc:
                log.info("idle publisher connection lost (%s)", describe(exc))
                channel.discard()
            finally:
                channel.lock.release()
        if any(channel.is_open for channel in self._channels):
            return
        # Nothing open any more (the broker closed us): find out now whether it is reachable,
        # so that readiness is true to the facts before the next request.
        first = self._channels[0]
        with first.lock:
            if first.is_open:
                return
            try:
                first.open()
            except _CONNECTION_ERRORS as exc:
                self._mark_down(exc)


# --------------------------------------------------------------------------------------------
# Consumer


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
        """Run ``callback`` on the I/O thread; False if this session's loop is gone."""
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
        log.info("consumer connected to RabbitMQ at %s", _where(self._params))
        connection.channel(on_open_callback=self._on_channel_open)

    def _on_connection_open_error(self, connection: pika.SelectConnection, error: BaseException) -> None:
        if is_fatal(error):
            self.fatal = error
        log.log(
            logging.ERROR if self.fatal else logging.INFO,
            "consumer cannot connect to RabbitMQ at %s: %s",
            _where(self._params),
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
        channel.exchange_declare(
            DEAD_LETTER_EXCHANGE, exchange_type="direct", durable=True, callback=self._on_exchange_declared
        )

    def _on_exchange_declared(self, _frame: Any) -> None:
        assert self._channel is not None
        self._channel.queue_declare(
            self._topology.dead_queue,
            durable=True,
            arguments=self._topology.dead_queue_arguments(),
            callback=self._on_dead_queue_declared,
        )

    def _on_dead_queue_declared(self, _frame: Any) -> None:
        assert self._channel is not None
        self._channel.queue_bind(
            self._topology.dead_queue,
            DEAD_LETTER_EXCHANGE,
            routing_key=self._topology.dead_queue,
            callback=self._on_dead_queue_bound,
        )

    def _on_dead_queue_bound(self, _frame: Any) -> None:
        assert self._channel is not None
        self._channel.queue_declare(
            self._topology.queue,
            durable=True,
            arguments=self._topology.queue_arguments(),
            callback=self._on_queue_declared,
        )

    def _on_queue_declared(self, _frame: Any) -> None:
        assert self._channel is not None
        self._channel.exchange_declare(
            self._topology.finished_exchange,
            exchange_type="fanout",
            durable=True,
            callback=self._on_finished_exchange_declared,
        )

    def _on_finished_exchange_declared(self, _frame: Any) -> None:
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


class _NoticeSender:
    """Publishes finished-job notices from a thread of its own, on a connection of its own.

    Never on the consuming connection: during a memory or disk alarm RabbitMQ blocks every
    connection that publishes, and stops reading from it, acks included; after
    ``blocked_connection_timeout`` the client drops it and the deliveries it held come back with
    their delivery count raised. A connection that only consumes and acks is never blocked, so
    workers keep draining the queue, which is what clears a memory alarm.

    Best effort, as notices are: :meth:`send` never blocks; a notice is dropped when the backlog
    is full or the broker unreachable (the long-poll looks at the store each second anyway).
    """

    def __init__(self, params: pika.ConnectionParameters, exchange: str):
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
                except _CONNECTION_ERRORS as exc:
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
        self._channel.basic_publish(self._exchange, "", body)

    def _connect(self) -> None:
        self._disconnect()
        try:
            connection = BlockingConnection(self._params)
            try:
                channel = connection.channel()
                channel.exchange_declare(self._exchange, exchange_type="fanout", durable=True)
            except BaseException:
                _close_quietly(connection)
                raise
        except _CONNECTION_ERRORS:
            self._next_attempt = time.monotonic() + self._backoff
            self._backoff = min(self._backoff * 2, BACKOFF_MAX_S)
            raise
        self._connection, self._channel = connection, channel
        self._backoff = BACKOFF_MIN_S

    def _disconnect(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None:
            _close_quietly(connection)


class RabbitConsumer:
    """Consumes the jobs queue on a background thread and hands deliveries out through
    :meth:`get`. Reconnects with capped backoff (0.5 s doubling to 10 s); stops for good on a
    refusal that will not heal, which :meth:`get` then raises as :class:`BrokerRefused`.
    Finished-job notices go out on a second connection (:class:`_NoticeSender`)."""

    def __init__(self, settings: Settings):
        self._topology = Topology.from_settings(settings)
        self._prefetch = settings.prefetch
        self._params = connection_parameters(
            settings.broker_url, f"classifier consumer queue={settings.queue_name} pid={os.getpid()}"
        )
        self._notices = _NoticeSender(
            connection_parameters(
                settings.broker_url, f"classifier notices queue={settings.queue_name} pid={os.getpid()}"
            ),
            self._topology.finished_exchange,
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
                raise BrokerRefused(f"RabbitMQ at {_where(self._params)} refused: {describe(self._fatal)}")
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


# --------------------------------------------------------------------------------------------
# Finished-job notices (the results service)


class RabbitFinishedListener:
    """Binds an exclusive, auto-deleted queue to the finished exchange and hands each notice's job
    ids to ``on_finished``, on a background thread. Reconnects with capped backoff; calls
    ``on_connected`` after each (re)connect, since notices sent in between were lost."""

    def __init__(self, settings: Settings):
        self._exchange = finished_exchange(settings.queue_name)
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
            except _CONNECTION_ERRORS:
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
            channel.exchange_declare(self._exchange, exchange_type="fanout", durable=True)
            queue_name = channel.queue_declare("", exclusive=True, auto_delete=True).method.queue
            channel.queue_bind(queue_name, self._exchange)
            channel.basic_consume(
                queue_name, lambda _ch, _method, _props, body: on_finished(decode_finished(body)), auto_ack=True
            )
            with self._lock:
                self._connection, self._channel = connection, channel
            if self._closing.is_set():
                return
            self._connected = True
            metrics.FINISHED_LISTENER_CONNECTED.set(1)
            log.info("listening for finished jobs on %s at %s", self._exchange, _where(self._params))
            on_connected()
            channel.start_consuming()
        finally:
            self._connected = False
            metrics.FINISHED_LISTENER_CONNECTED.set(0)
            with self._lock:
                self._connection = self._channel = None
            _close_quietly(connection)


# --------------------------------------------------------------------------------------------
# The dead-letter queue (the workers' reconciler)


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
            except _CONNECTION_ERRORS:
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
            log.info("reconciling dead letters from %s at %s", self._topology.dead_queue, _where(self._params))
            channel.start_consuming()
        finally:
            self._connected = False
            with self._lock:
                self._connection = self._channel = None
            _close_quietly(connection)
