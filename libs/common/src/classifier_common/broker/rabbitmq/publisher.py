"""The gateway's side of the job queue: publishes with confirms, pipelined on one connection.

Any thread may publish; each call returns once the broker has confirmed its message. The messages
go out through one confirm channel driven by an I/O thread of its own (pika's SelectConnection):
a publish is handed to that thread, which sends whatever is waiting, up to ``PUBLISH_WINDOW``
unconfirmed, and completes each caller's wait from the broker's confirms, which under load come
several at a time. Publishing from a pool of blocking channels instead cost each submission a
thread waiting in pika's own loop for its confirm: 339–385 µs of CPU per 100 KB message from 16
threads against 276–287 µs pipelined (docs/performance.md, *Levers*).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection
from pika.channel import Channel
from pika.spec import Basic, BasicProperties

from classifier_common.broker.base import QueueCounts, dead_letter_queue
from classifier_common.broker.rabbitmq import management
from classifier_common.broker.rabbitmq.connection import (
    BACKOFF_MAX_S,
    BACKOFF_MIN_S,
    CONNECTION_ERRORS,
    KEEPALIVE_INTERVAL_S,
    BrokerRefused,
    close_quietly,
    connection_parameters,
    describe,
    is_fatal,
    where,
)
from classifier_common.broker.rabbitmq.topology import Topology
from classifier_common.config import DEFAULT_POOL, Settings
from classifier_common.errors import BrokerUnavailable, queue_full

log = logging.getLogger(__name__)

# Messages sent and not yet confirmed, at most; more wait for confirms to free their place. A full
# queue (reject-publish) holds its max length plus up to this many (topology.py).
PUBLISH_WINDOW = 16
# A publish waits at most this long for the broker's confirm (milliseconds normally). A broker
# that takes the message and never confirms it (a quorum queue that lost its majority) would
# otherwise hold the request for ever; the connection is then dropped.
CONFIRM_TIMEOUT_S = 10.0
# How long opening the publishing connection may take (TCP, AMQP handshake, confirm mode).
OPEN_TIMEOUT_S = 10.0
# How often the I/O thread looks for a confirm overdue.
_CONFIRM_CHECK_S = 0.5


class ConfirmTimeout(pika.exceptions.AMQPConnectionError):
    """The broker did not confirm a publish in time; its connection is dropped."""


class _Channel:
    """A blocking connection with one channel, opened lazily, for the operator's calls (queue
    counts) and for declaring the topology: opening it declares every pool's. pika's
    BlockingConnection is not thread-safe: every method here is called with ``lock`` held."""

    def __init__(self, params: pika.ConnectionParameters, topologies: list[Topology]):
        self.lock = threading.Lock()
        self._params = params
        self._topologies = topologies
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
            for topology in self._topologies:
                topology.declare(channel)
        except BaseException:
            close_quietly(connection)
            raise
        self._connection, self._channel = connection, channel

    def declare_passive(self, queue_name: str) -> tuple[int, int]:
        """(ready messages, consumers) of an existing queue."""
        if not self.is_open:
            self.open()
        assert self._channel is not None
        method = self._channel.queue_declare(queue_name, passive=True).method
        return method.message_count, method.consumer_count

    def keepalive(self) -> None:
        """Answer heartbeats and notice a connection the broker closed."""
        if self._connection is not None and self._connection.is_open:
            self._connection.process_data_events(time_limit=0)

    def discard(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None:
            close_quietly(connection)


@dataclass(eq=False)
class _Publish:
    routing_key: str
    body: bytes
    properties: BasicProperties
    future: Future[None] = field(default_factory=Future)
    sent_at: float = 0.0
    returned: bool = False  # the broker returned it unroutable (its confirm follows)


class _Pipeline:
    """One connection with one confirm channel, run by an I/O thread of its own. Publishes from any
    thread are queued to it; their futures complete from the broker's confirms (or fail with the
    reason the connection closed). Used once: a closed pipeline is replaced by a new one."""

    def __init__(self, params: pika.ConnectionParameters):
        self._params = params
        self._waiting: queue.SimpleQueue[_Publish] = queue.SimpleQueue()
        self._unconfirmed: dict[int, _Publish] = {}  # by delivery tag; the I/O thread's own
        self._last_tag = 0
        self._lock = threading.Lock()  # guards _alive, _wake_pending and the hand-over of new publishes
        self._alive = True
        self._wake_pending = False  # the I/O thread is woken and has not yet sent what waits
        self._error: BaseException | None = None  # why it closed, or could not open
        self._opened = threading.Event()  # open, or given up
        self._connection: pika.SelectConnection | None = None
        self._channel: Channel | None = None
        self._thread = threading.Thread(target=self._run, name="broker-publisher", daemon=True)

    # -- any thread

    def open(self) -> None:
        """Connect and put the channel in confirm mode; raises the connection's error."""
        self._thread.start()
        if not self._opened.wait(OPEN_TIMEOUT_S):
            self.close()
            raise pika.exceptions.AMQPConnectionError(f"not open within {OPEN_TIMEOUT_S:.0f} s")
        if self._error is not None:
            raise self._error

    @property
    def is_open(self) -> bool:
        return self._alive and self._opened.is_set() and self._error is None

    def publish(self, routing_key: str, body: bytes, properties: BasicProperties) -> Future[None]:
        item = _Publish(routing_key, body, properties)
        with self._lock:
            if not self._alive or self._connection is None:
                raise self._error or pika.exceptions.AMQPConnectionError("the publisher's connection is closed")
            self._waiting.put(item)
            if not self._wake_pending:
                # One wake-up of the I/O thread (a write to its socket, which lets go of the GIL)
                # sends everything waiting by then: publishes that come together share it.
                self._connection.ioloop.add_callback_threadsafe(self._woken)
                self._wake_pending = True
        return item.future

    def close(self) -> None:
        with self._lock:
            if self._alive and self._connection is not None:
                self._connection.ioloop.add_callback_threadsafe(self._close)
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(5)

    # -- the I/O thread

    def _run(self) -> None:
        try:
            with self._lock:
                self._connection = pika.SelectConnection(
                    self._params,
                    on_open_callback=self._on_connection_open,
                    on_open_error_callback=self._on_closed,
                    on_close_callback=self._on_closed,
                )
            self._connection.ioloop.start()
        except Exception as exc:  # noqa: BLE001 - every waiting caller must hear of it
            log.exception("publisher I/O thread failed")
            # As a lost connection: the callers retry once on a fresh one.
            self._fail_all(pika.exceptions.AMQPConnectionError(f"the publisher's I/O thread failed: {exc!r}"))
        finally:
            self._opened.set()
            if self._connection is not None:
                self._connection.ioloop.close()

    def _on_connection_open(self, connection: pika.SelectConnection) -> None:
        connection.channel(on_open_callback=self._on_channel_open)

    def _on_channel_open(self, channel: Channel) -> None:
        self._channel = channel
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_return_callback(self._on_return)
        channel.confirm_delivery(self._on_confirm, callback=self._on_confirm_mode)

    def _on_confirm_mode(self, _frame: Any) -> None:
        assert self._connection is not None
        self._connection.ioloop.call_later(_CONFIRM_CHECK_S, self._check_overdue)
        self._opened.set()
        self._send()

    def _woken(self) -> None:
        with self._lock:
            self._wake_pending = False  # a publish from now on wakes the thread again
        self._send()

    def _send(self) -> None:
        channel = self._channel
        if channel is None or not channel.is_open or not self._opened.is_set():
            return  # not in confirm mode yet: sent once it is; closed: failed by _on_closed
        while len(self._unconfirmed) < PUBLISH_WINDOW:
            try:
                item = self._waiting.get_nowait()
            except queue.Empty:
                return
            try:
                channel.basic_publish("", item.routing_key, item.body, item.properties, mandatory=True)
            except CONNECTION_ERRORS as exc:  # the channel is closing: the rest fail with it
                item.future.set_exception(exc)
                return
            self._last_tag += 1
            item.sent_at = time.monotonic()
            self._unconfirmed[self._last_tag] = item

    def _on_return(self, _channel: Channel, _method: Any, properties: BasicProperties, _body: bytes) -> None:
        for item in self._unconfirmed.values():
            if not item.returned and item.properties.message_id == properties.message_id:
                item.returned = True
                return

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        acked = isinstance(method, Basic.Ack)
        if method.multiple:
            tags = [tag for tag in self._unconfirmed if tag <= method.delivery_tag]
        else:
            tags = [method.delivery_tag]
        for tag in tags:
            item = self._unconfirmed.pop(tag, None)
            if item is None:
                continue
            if not acked:
                item.future.set_exception(pika.exceptions.NackError([item.properties]))
            elif item.returned:
                item.future.set_exception(pika.exceptions.UnroutableError([item.properties]))
            else:
                item.future.set_result(None)
        self._send()

    def _check_overdue(self) -> None:
        oldest = next(iter(self._unconfirmed.values()), None)
        assert self._connection is not None
        if oldest is not None and time.monotonic() - oldest.sent_at > CONFIRM_TIMEOUT_S:
            # pika offers no public way to drop a connection that cannot close cleanly.
            error = ConfirmTimeout(f"no confirm within {CONFIRM_TIMEOUT_S:.0f} s")
            self._connection._terminate_stream(error)  # noqa: SLF001
            return
        self._connection.ioloop.call_later(_CONFIRM_CHECK_S, self._check_overdue)

    def _on_channel_closed(self, _channel: Channel, reason: BaseException) -> None:
        self._channel = None
        if self._error is None:
            self._error = reason
        assert self._connection is not None
        if self._connection.is_open:
            self._connection.close()

    def _close(self) -> None:
        if self._connection is not None and self._connection.is_open:
            self._connection.close()

    def _on_closed(self, connection: pika.SelectConnection, reason: BaseException | str) -> None:
        # pika passes the open error as text in some cases
        self._fail_all(pika.exceptions.AMQPConnectionError(reason) if isinstance(reason, str) else reason)
        connection.ioloop.stop()

    def _fail_all(self, error: BaseException) -> None:
        """No more publishes: the ones sent or waiting fail with why the pipeline closed (a
        channel's own error, when it closed first, rather than our closing the connection)."""
        with self._lock:
            self._alive = False
            if self._error is None or isinstance(self._error, pika.exceptions.ConnectionClosedByClient):
                self._error = error
            error = self._error or error
        self._opened.set()
        left = list(self._unconfirmed.values())
        self._unconfirmed.clear()
        while True:
            try:
                left.append(self._waiting.get_nowait())
            except queue.Empty:
                break
        for item in left:
            if not item.future.done():
                item.future.set_exception(error)


class RabbitPublisher:
    """Publishes persistent JSON messages to a pool's jobs queue and waits for the broker's confirm.
    Every pool's topology is declared on each connection it opens.

    Safe to call from many threads (see the module's text). A connection error is retried once on
    a fresh connection (so a message may be published twice, never lost: the message id is the job
    id and consumers skip finished jobs). When that fails too the publisher is *down*: calls raise
    :class:`BrokerUnavailable` at once while a background thread reconnects with capped backoff.
    """

    def __init__(self, settings: Settings):
        self._topologies = Topology.for_pools(settings)
        self._retry_after = settings.broker_retry_after_s
        self._management_url = settings.rabbitmq_management_url
        self._params = connection_parameters(
            settings.broker_url, f"classifier publisher queue={settings.queue_name} pid={os.getpid()}"
        )
        self._admin = _Channel(self._params, list(self._topologies.values()))
        self._pipeline: _Pipeline | None = None
        self._pipeline_lock = threading.Lock()  # one thread opens a new pipeline, the others use it

        self._state_lock = threading.Lock()
        self._down_reason: str | None = None
        self._backoff = BACKOFF_MIN_S
        self._next_attempt = 0.0
        self._closing = threading.Event()

        # Errors that will not heal stop the service at start-up; an unreachable broker does not
        # (the gateway starts unready and recovers by itself).
        try:
            self._open_pipeline()
            log.info("publisher connected to RabbitMQ at %s", where(self._params))
        except CONNECTION_ERRORS as exc:
            if is_fatal(exc):
                raise BrokerRefused(f"RabbitMQ at {where(self._params)} refused: {describe(exc)}") from exc
            self._mark_down(exc)
        self._keeper = threading.Thread(target=self._keep, name="broker-publisher-keeper", daemon=True)
        self._keeper.start()

    # -- the Publisher protocol

    def publish(self, body: bytes, *, message_id: str, pool: str = DEFAULT_POOL) -> None:
        """:meth:`start_publish`, waiting for its outcome."""
        self.start_publish(body, message_id=message_id, pool=pool).result()

    def start_publish(self, body: bytes, *, message_id: str, pool: str = DEFAULT_POOL) -> Future[None]:
        """Hands the message to the pipeline and returns at once; the future completes with the
        broker's confirm, or fails with QueueFull or BrokerUnavailable. A first attempt lost with
        its connection is retried once on a fresh one, on a thread of its own (opening blocks)."""
        self._topology(pool)  # an unknown pool is refused here, on the caller's thread
        self._raise_if_down()
        properties = BasicProperties(
            delivery_mode=pika.DeliveryMode.Persistent, content_type="application/json", message_id=message_id
        )
        outcome: Future[None] = Future()
        pipeline = self._pipeline
        if pipeline is not None and pipeline.is_open:
            self._first_attempt(outcome, pool, body, properties, pipeline)
        else:
            # Opening a connection blocks: not on the caller's thread.
            threading.Thread(
                target=self._first_attempt, args=(outcome, pool, body, properties, None), daemon=True
            ).start()
        return outcome

    def ping(self) -> None:
        self._raise_if_down()

    def depth(self, pool: str = DEFAULT_POOL) -> int:
        """Messages *ready* in the pool's jobs queue (AMQP reports no unacknowledged count: messages
        held by workers are not included). For readiness and metrics only."""
        topology = self._topology(pool)
        self._raise_if_down()
        with self._admin.lock:
            try:
                return self._admin.declare_passive(topology.queue)[0]
            except CONNECTION_ERRORS as exc:
                self._admin.discard()
                raise self._unavailable(exc) from exc

    def queue_counts(self, pool: str = DEFAULT_POOL) -> QueueCounts:
        """From passive declares of the pool's queue and its dead-letter queue; ``unacked`` from
        the management API when CLASSIFIER_RABBITMQ_MANAGEMENT_URL is set (AMQP does not report
        it), else None. For the operator view only."""
        queue_name = self._topology(pool).queue
        self._raise_if_down()
        with self._admin.lock:
            try:
                ready, consumers = self._admin.declare_passive(queue_name)
                dead, _ = self._admin.declare_passive(dead_letter_queue(queue_name))
            except CONNECTION_ERRORS as exc:
                # A queue nobody declared closes the channel (404): the next call reopens it.
                self._admin.discard()
                raise self._unavailable(exc) from exc
        held = None
        if self._management_url:
            held = management.unacked(self._management_url, self._params.virtual_host, queue_name)
        return QueueCounts(ready=ready, unacked=held, consumers=consumers, dead_letters=dead)

    def close(self) -> None:
        self._closing.set()
        self._keeper.join(timeout=10)
        with self._pipeline_lock:
            pipeline, self._pipeline = self._pipeline, None
        if pipeline is not None:
            pipeline.close()
        with self._admin.lock:
            self._admin.discard()

    # -- internals

    def _topology(self, pool: str) -> Topology:
        try:
            return self._topologies[pool]
        except KeyError:
            raise ValueError(f"no queue for pool {pool!r} (pools: {', '.join(self._topologies)})") from None

    def _first_attempt(
        self, outcome: Future[None], pool: str, body: bytes, properties: BasicProperties, pipeline: _Pipeline | None
    ) -> None:
        """Publishes on ``pipeline`` (None: on one opened now, which blocks) and settles
        ``outcome`` from its confirm."""
        try:
            if pipeline is None:
                pipeline = self._open_pipeline()
            confirm = pipeline.publish(self._topologies[pool].queue, body, properties)
        except CONNECTION_ERRORS as exc:
            self._first_attempt_failed(exc, outcome, pool, body, properties, pipeline)
            return
        except Exception as exc:  # noqa: BLE001 - down, found while opening (or a bug): the caller hears of it
            outcome.set_exception(exc)
            return
        used = pipeline

        def settle(confirm: Future[None]) -> None:  # on the pipeline's I/O thread, or here
            error = confirm.exception()
            if error is None:
                outcome.set_result(None)
            else:
                self._first_attempt_failed(error, outcome, pool, body, properties, used)

        confirm.add_done_callback(settle)

    def _first_attempt_failed(
        self,
        error: BaseException,
        outcome: Future[None],
        pool: str,
        body: bytes,
        properties: BasicProperties,
        pipeline: _Pipeline | None,
    ) -> None:
        """Settles ``outcome`` after the first attempt on ``pipeline`` failed, or retries on a
        fresh connection. Runs on the pipeline's I/O thread: whatever blocks (dropping the
        pipeline, opening a new one) goes to a thread of its own."""
        topology = self._topologies[pool]
        if isinstance(error, pika.exceptions.NackError):
            outcome.set_exception(queue_full(pool, topology.max_length, self._retry_after))
        elif isinstance(error, (pika.exceptions.ConnectionBlockedTimeout, ConfirmTimeout)):
            # A resource alarm, or a queue that cannot confirm: a fresh connection would wait
            # just the same.
            outcome.set_exception(self._unavailable(error))
        elif isinstance(error, CONNECTION_ERRORS):
            # A lost connection, or a queue deleted under us (unroutable): the fresh connection
            # declares the topology again.
            log.warning("publish of %s failed (%s); reconnecting once", properties.message_id, describe(error))

            def retry() -> None:
                if pipeline is not None:
                    self._drop_pipeline(pipeline)
                self._publish_on_fresh(pool, body, properties)

            self._in_background(outcome, retry)
        else:
            outcome.set_exception(error)

    def _publish_on_fresh(self, pool: str, body: bytes, properties: BasicProperties) -> None:
        """The last attempt, blocking: on the open pipeline or a new one; a connection error marks
        the publisher down."""
        topology = self._topologies[pool]
        try:
            pipeline = self._open_pipeline()
            try:
                pipeline.publish(topology.queue, body, properties).result(CONFIRM_TIMEOUT_S + OPEN_TIMEOUT_S)
            except FutureTimeout:
                raise ConfirmTimeout(f"no confirm within {CONFIRM_TIMEOUT_S:.0f} s") from None
            except pika.exceptions.NackError:
                raise
            except CONNECTION_ERRORS:
                self._drop_pipeline(pipeline)
                raise
        except pika.exceptions.NackError as exc:
            raise queue_full(pool, topology.max_length, self._retry_after) from exc
        except CONNECTION_ERRORS as exc:
            self._mark_down(exc)
            raise self._unavailable(exc) from exc

    @staticmethod
    def _in_background(outcome: Future[None], publish: Callable[[], None]) -> None:
        def run() -> None:
            try:
                publish()
            except BaseException as exc:  # noqa: BLE001 - the caller hears of it through the future
                outcome.set_exception(exc)
            else:
                outcome.set_result(None)

        threading.Thread(target=run, name="broker-publish-retry", daemon=True).start()

    def _open_pipeline(self, *, reconnecting: bool = False) -> _Pipeline:
        """The open pipeline, or a new one (declaring the topology first). Publishes that waited
        for another thread's attempt to open it are refused at once if that attempt marked the
        publisher down, instead of each trying again."""
        with self._pipeline_lock:
            if self._pipeline is not None and self._pipeline.is_open:
                return self._pipeline
            if not reconnecting:
                self._raise_if_down()
            if self._pipeline is not None:
                self._pipeline.close()
                self._pipeline = None
            with self._admin.lock:
                self._admin.open()  # declares every pool's topology
            pipeline = _Pipeline(self._params)
            pipeline.open()
            self._pipeline = pipeline
            return pipeline

    def _drop_pipeline(self, pipeline: _Pipeline) -> None:
        with self._pipeline_lock:
            if self._pipeline is pipeline:
                self._pipeline = None
        pipeline.close()

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
            where(self._params),
            describe(error),
        )

    def _keep(self) -> None:
        """Background: reconnect while down, otherwise keep the connections alive."""
        while not self._closing.wait(self._seconds_to_next_tick()):
            try:
                if self._down_reason is not None:
                    self._try_reconnect()
                else:
                    self._keep_alive()
            except Exception:  # the keeper must outlive any surprise; the next tick tries again
                log.exception("publisher keeper failed")

    def _seconds_to_next_tick(self) -> float:
        if self._down_reason is None:
            return KEEPALIVE_INTERVAL_S
        return min(KEEPALIVE_INTERVAL_S, max(0.0, self._next_attempt - time.monotonic()))

    def _try_reconnect(self) -> None:
        if time.monotonic() < self._next_attempt:
            return
        try:
            self._open_pipeline(reconnecting=True)
        except CONNECTION_ERRORS as exc:
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
        log.info("publisher reconnected to RabbitMQ at %s", where(self._params))

    def _keep_alive(self) -> None:
        """Heartbeats on the blocking connection (the pipeline's I/O thread answers its own); when
        the broker closed the publishing connection, find out now whether it is reachable, so that
        readiness is true to the facts before the next request."""
        if self._admin.lock.acquire(blocking=False):
            try:
                self._admin.keepalive()
            except CONNECTION_ERRORS as exc:
                log.info("idle publisher connection lost (%s)", describe(exc))
                self._admin.discard()
            finally:
                self._admin.lock.release()
        pipeline = self._pipeline
        if pipeline is not None and pipeline.is_open:
            return
        try:
            self._open_pipeline(reconnecting=True)
        except CONNECTION_ERRORS as exc:
            self._mark_down(exc)
