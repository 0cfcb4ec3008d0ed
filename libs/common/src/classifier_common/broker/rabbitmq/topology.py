"""What the jobs need on RabbitMQ, described once and declared idempotently by every side that
uses it: the publisher and the dead-letter consumer on blocking channels (:meth:`Topology.declare`),
the consumer on its asynchronous channel (:meth:`Topology.declare_async`).

One :class:`Topology` per worker pool: each pool's jobs wait in a queue of its own,
``<queue_name>.<pool>`` (docs/pools.md says why a queue per pool rather than one exchange routing
to shared consumers). The gateway declares every pool's; a worker and its reconciler their pool's.

    <queue_name>.<pool>       durable quorum queue: delivery limit, max length with reject-publish,
                              dead-lettering to classifier.dlx
    classifier.dlx            durable direct exchange  -> <queue_name>.<pool>.dead (durable quorum
                              queue), keyed by that name
    <queue_name>.finished     durable fanout exchange shared by every pool: workers publish the ids
                              of the jobs they finished
                      (transient, no confirm, on a connection of their own: see
                      :class:`~classifier_common.broker.rabbitmq.notices.NoticeSender`); each
                      results service binds its own exclusive queue

What this relies on in RabbitMQ 3.10 quorum queues (tests/common/broker/test_rabbitmq.py checks
each point against the real broker):

- ``x-delivery-count`` holds the number of earlier deliveries (0 or absent on the first one). A
  reject with requeue and a return caused by the consumer's channel closing both increase it.
- A message is dead-lettered on the return that makes its delivery count exceed
  ``x-delivery-limit``; a limit of ``max_deliveries - 1`` therefore allows exactly ``max_deliveries``
  deliveries (``Settings.delivery_limit``, one more than ``max_attempts``).
- ``x-max-length`` counts ready messages only, and reject-publish nacks a publish once the ready
  count is *over* the limit: a full queue holds ``max_length`` plus up to one message per publish
  in flight at that moment (the publisher sends at most ``PUBLISH_WINDOW`` unconfirmed). The
  bound is a back-pressure limit, not an exact count.
- A passive ``queue.declare`` reports ready messages only (see
  :meth:`~classifier_common.broker.rabbitmq.publisher.RabbitPublisher.depth`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pika.adapters.blocking_connection import BlockingChannel
from pika.channel import Channel

from classifier_common.broker.base import DEAD_LETTER_EXCHANGE, dead_letter_queue, finished_exchange
from classifier_common.config import Settings

# Called with the broker's reply frame once a declaration on an asynchronous channel is done.
OnDeclared = Callable[[Any], None]


def _with(callback: OnDeclared | None) -> dict[str, Any]:
    """pika's asynchronous channel takes a callback; the blocking one has none and returns when done."""
    return {} if callback is None else {"callback": callback}


@dataclass(frozen=True)
class Exchange:
    name: str
    type: str  # "direct" or "fanout"

    def declare(self, channel: BlockingChannel | Channel, callback: OnDeclared | None = None) -> None:
        channel.exchange_declare(self.name, exchange_type=self.type, durable=True, **_with(callback))


@dataclass(frozen=True)
class Queue:
    name: str
    arguments: dict[str, Any]

    def declare(self, channel: BlockingChannel | Channel, callback: OnDeclared | None = None) -> None:
        channel.queue_declare(self.name, durable=True, arguments=self.arguments, **_with(callback))


@dataclass(frozen=True)
class Binding:
    queue: str
    exchange: str
    routing_key: str

    def declare(self, channel: BlockingChannel | Channel, callback: OnDeclared | None = None) -> None:
        channel.queue_bind(self.queue, self.exchange, routing_key=self.routing_key, **_with(callback))


Declaration = Exchange | Queue | Binding


def finished_notices(queue_name: str) -> Exchange:
    """The fanout exchange that finished-job notices of every pool go through (``queue_name`` is
    ``Settings.queue_name``, the pools' common prefix)."""
    return Exchange(finished_exchange(queue_name), "fanout")


def listen_to(channel: BlockingChannel, exchange: Exchange) -> str:
    """Declare ``exchange`` and a queue of this listener's own bound to it (server-named,
    exclusive: it goes with the connection); returns the queue's name."""
    exchange.declare(channel)
    queue = channel.queue_declare("", exclusive=True, auto_delete=True).method.queue
    channel.queue_bind(queue, exchange.name)
    return queue


@dataclass(frozen=True)
class Topology:
    queue: str  # one pool's
    max_length: int
    max_deliveries: int  # Settings.delivery_limit
    finished_exchange: str  # shared by every pool

    @classmethod
    def from_settings(cls, settings: Settings, pool: str | None = None) -> Topology:
        """The topology of ``pool`` (default: the pool this process serves, ``settings.pool``)."""
        return cls(
            settings.queue_for_pool(pool or settings.pool),
            settings.queue_max_length,
            settings.delivery_limit,
            finished_exchange(settings.queue_name),
        )

    @classmethod
    def for_pools(cls, settings: Settings) -> dict[str, Topology]:
        """Every pool's topology, by pool name (what the gateway publishes to)."""
        return {pool: cls.from_settings(settings, pool) for pool in settings.pools}

    @property
    def dead_queue(self) -> str:
        return dead_letter_queue(self.queue)

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

    def declarations(self) -> tuple[Declaration, ...]:
        """Everything to declare, in order: the dead-letter exchange and queue before the jobs
        queue that dead-letters to them, the finished-job notices' exchange last."""
        return (
            Exchange(DEAD_LETTER_EXCHANGE, "direct"),
            Queue(self.dead_queue, self.dead_queue_arguments()),
            Binding(self.dead_queue, DEAD_LETTER_EXCHANGE, routing_key=self.dead_queue),
            Queue(self.queue, self.queue_arguments()),
            Exchange(self.finished_exchange, "fanout"),
        )

    def declare(self, channel: BlockingChannel) -> None:
        """Declares everything on a blocking channel; returns when the broker has answered."""
        for declaration in self.declarations():
            declaration.declare(channel)

    def declare_async(self, channel: Channel, on_done: Callable[[], None]) -> None:
        """Declares the same on an asynchronous channel, each declaration from the previous one's
        callback, and calls ``on_done`` (on the I/O thread) after the last."""
        pending = list(self.declarations())

        def declare_next(_frame: Any = None) -> None:
            if pending:
                pending.pop(0).declare(channel, callback=declare_next)
            else:
                on_done()

        declare_next()
