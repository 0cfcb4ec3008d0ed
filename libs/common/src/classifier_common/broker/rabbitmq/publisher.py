"""The gateway's side of the job queue: a pooled blocking publisher with confirms."""

from __future__ import annotations

import logging
import os
import queue
import threading
import time

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection
from pika.spec import BasicProperties

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

# Publisher: connections (each with one confirm channel) shared by the gateway's threads. One
# channel waits for each confirm in turn; a few side by side let the quorum queue batch its
# writes (measured on 2 cores: ~1,300 confirmed publishes/s with one, ~3,000/s with four).
PUBLISH_POOL_SIZE = 4
# A caller waits at most this long for a free publisher channel before getting a 503.
CHECKOUT_TIMEOUT_S = 30.0
# A publish waits at most this long for the broker's confirm (milliseconds normally). A broker
# that takes the message and never confirms it (a quorum queue that lost its majority) would
# otherwise hold the request, and the channel, for ever.
CONFIRM_TIMEOUT_S = 10.0


class ConfirmTimeout(pika.exceptions.AMQPConnectionError):
    """The broker did not confirm a publish in time; its connection is dropped."""


class _PublishChannel:
    """One connection with one confirm channel, opened lazily. pika's BlockingConnection is not
    thread-safe: every method here is called with ``lock`` held."""

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
            channel.confirm_delivery()
        except BaseException:
            close_quietly(connection)
            raise
        self._connection, self._channel = connection, channel

    def publish(self, queue_name: str, body: bytes, properties: BasicProperties) -> None:
        """Returns once the broker confirmed; NackError when the queue refused the message."""
        if not self.is_open:
            self.open()
        assert self._channel is not None and self._connection is not None
        # pika's BlockingChannel waits for the confirm with no deadline of its own. A timer on the
        # connection's own I/O loop (how pika times out a blocked connection) ends the stream,
        # and the wait raises ConfirmTimeout.
        loop = self._connection._impl  # noqa: SLF001 - pika offers no public deadline for a confirm
        timer = loop._adapter_call_later(  # noqa: SLF001
            CONFIRM_TIMEOUT_S,
            lambda: loop._terminate_stream(ConfirmTimeout(f"no confirm within {CONFIRM_TIMEOUT_S:.0f} s")),  # noqa: SLF001
        )
        try:
            self._channel.basic_publish(
                exchange="", routing_key=queue_name, body=body, properties=properties, mandatory=True
            )
        finally:
            loop._adapter_remove_timeout(timer)  # noqa: SLF001

    def ready_count(self, queue_name: str) -> int:
        if not self.is_open:
            self.open()
        assert self._channel is not None
        return self._channel.queue_declare(queue_name, passive=True).method.message_count

    def keepalive(self) -> None:
        """Answer heartbeats and notice a connection the broker closed."""
        if self._connection is not None and self._connection.is_open:
            self._connection.process_data_events(time_limit=0)

    def discard(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None:
            close_quietly(connection)


class RabbitPublisher:
    """Publishes persistent JSON messages to a pool's jobs queue and waits for the broker's confirm.
    Every pool's topology is declared on each connection it opens.

    Safe to call from many threads: each call takes one channel of a small pool for itself.
    A connection error is retried once on a fresh connection (so a message may be published
    twice, never lost: the message id is the job id and consumers skip finished jobs). When
    that fails too the publisher is *down*: calls raise :class:`BrokerUnavailable` at once while
    a background thread reconnects with capped backoff.
    """

    def __init__(self, settings: Settings, *, pool_size: int = PUBLISH_POOL_SIZE):
        self._topologies = Topology.for_pools(settings)
        self._retry_after = settings.broker_retry_after_s
        self._params = connection_parameters(
            settings.broker_url, f"classifier publisher queue={settings.queue_name} pid={os.getpid()}"
        )
        self._channels = [_PublishChannel(self._params, list(self._topologies.values())) for _ in range(pool_size)]
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
                log.info("publisher connected to RabbitMQ at %s", where(self._params))
            except CONNECTION_ERRORS as exc:
                if is_fatal(exc):
                    raise BrokerRefused(f"RabbitMQ at {where(self._params)} refused: {describe(exc)}") from exc
                self._mark_down(exc)
        self._keeper = threading.Thread(target=self._keep, name="broker-publisher-keeper", daemon=True)
        self._keeper.start()

    # -- the Publisher protocol

    def publish(self, body: bytes, *, message_id: str, pool: str = DEFAULT_POOL) -> None:
        topology = self._topology(pool)
        self._raise_if_down()
        properties = BasicProperties(
            delivery_mode=pika.DeliveryMode.Persistent, content_type="application/json", message_id=message_id
        )
        channel = self._checkout()
        try:
            with channel.lock:
                self._publish_retrying_once(channel, pool, topology, body, properties)
        finally:
            self._idle.put(channel)

    def ping(self) -> None:
        self._raise_if_down()

    def depth(self, pool: str = DEFAULT_POOL) -> int:
        """Messages *ready* in the pool's jobs queue (AMQP reports no unacknowledged count: messages
        held by workers are not included). For readiness and metrics only."""
        topology = self._topology(pool)
        self._raise_if_down()
        channel = self._checkout()
        try:
            with channel.lock:
                try:
                    return channel.ready_count(topology.queue)
                except CONNECTION_ERRORS as exc:
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

    def _topology(self, pool: str) -> Topology:
        try:
            return self._topologies[pool]
        except KeyError:
            raise ValueError(f"no queue for pool {pool!r} (pools: {', '.join(self._topologies)})") from None

    def _publish_retrying_once(
        self, channel: _PublishChannel, pool: str, topology: Topology, body: bytes, properties: BasicProperties
    ) -> None:
        try:
            channel.publish(topology.queue, body, properties)
            return
        except pika.exceptions.NackError as exc:
            raise queue_full(pool, topology.max_length, self._retry_after) from exc
        except (pika.exceptions.ConnectionBlockedTimeout, ConfirmTimeout) as exc:
            # A resource alarm, or a queue that cannot confirm: a fresh connection would wait
            # just the same.
            channel.discard()
            raise self._unavailable(exc) from exc
        except CONNECTION_ERRORS as exc:
            log.warning("publish of %s failed (%s); reconnecting once", properties.message_id, describe(exc))
            channel.discard()
        try:
            channel.publish(topology.queue, body, properties)
        except pika.exceptions.NackError as exc:
            raise queue_full(pool, topology.max_length, self._retry_after) from exc
        except CONNECTION_ERRORS as exc:
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

    def _keep_idle_alive(self) -> None:
        for channel in self._channels:
            if not channel.lock.acquire(blocking=False):
                continue  # in use: a publish is servicing it
            try:
                channel.keepalive()
            except CONNECTION_ERRORS as exc:
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
            except CONNECTION_ERRORS as exc:
                self._mark_down(exc)
