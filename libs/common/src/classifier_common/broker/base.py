"""The job queue: a publisher (gateway) and a consumer (worker), two adapters
(in-process memory for the embedded default, RabbitMQ through pika in production).

Guarantees every adapter keeps:
- ``Publisher.publish`` returns only once the broker has the message durably (RabbitMQ:
  publisher confirm of a persistent message on a durable quorum queue). Otherwise it raises
  ``BrokerUnavailable`` (cannot reach the broker) or ``QueueFull`` (the bounded backlog refused it).
- A delivery that is neither acked nor rejected (the worker died, the connection dropped)
  is delivered again.
- ``Delivery.reject(requeue=False)`` sends the message to the dead-letter queue.
- After ``Settings.delivery_limit`` deliveries of the same message the broker dead-letters it.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Protocol

# Topology names: one place.
DEAD_LETTER_EXCHANGE = "classifier.dlx"


def dead_letter_queue(queue_name: str) -> str:
    return f"{queue_name}.dead"


def finished_exchange(queue_name: str) -> str:
    """The fanout exchange on which workers announce the jobs they finished."""
    return f"{queue_name}.finished"


def encode_finished(job_ids: list[str]) -> bytes:
    return ",".join(job_ids).encode("ascii")


def decode_finished(body: bytes) -> list[str]:
    """The job ids of a notice; anything that is not a job id is ignored (a notice only says
    "look again", so a bad one costs nothing but a lookup)."""
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        return []
    return [job_id for job_id in text.split(",") if len(job_id) == 32 and job_id.isalnum()]


class Delivery(Protocol):
    body: bytes
    redelivered: bool
    delivery_count: int  # 1 on the first delivery

    def ack(self) -> None:
        """Thread-safe. The message is done. A no-op if the channel it came on is gone (the broker
        will deliver it again, and the store's conditional writes make that harmless)."""

    def reject(self, requeue: bool) -> None:
        """Thread-safe. requeue=True: deliver again later. requeue=False: dead-letter it."""


@dataclass(frozen=True)
class QueueCounts:
    """What the broker says about one jobs queue (the operator view, GET /v1/stats)."""

    ready: int  # messages waiting for a worker
    unacked: int | None  # delivered to workers, not acked yet; None where the broker does not say (AMQP)
    consumers: int  # workers consuming it
    dead_letters: int  # messages waiting in its dead-letter queue for the reconciler


class Publisher(Protocol):
    """Publishes to the queue of any worker pool (``Settings.pools``); each queue is bounded on its
    own, so a full pool's queue refuses (QueueFull) only that pool's jobs. An unknown pool is a
    programming error (ValueError)."""

    def publish(self, body: bytes, *, message_id: str, pool: str = ...) -> None:
        """Publish and wait until the broker has the message durably (raises QueueFull,
        BrokerUnavailable)."""

    def start_publish(self, body: bytes, *, message_id: str, pool: str = ...) -> Future[None]:
        """Publish without waiting: the future completes once the broker has the message durably.
        QueueFull and BrokerUnavailable come either at once or through the future; the future
        always completes, within the broker's confirm and connection timeouts."""

    def ping(self) -> None:
        """Raise BrokerUnavailable unless connected."""

    def depth(self, pool: str = ...) -> int:
        """Messages ready in the pool's queue (not those held by workers: AMQP does not report them)."""

    def queue_counts(self, pool: str = ...) -> QueueCounts:
        """The counts of the pool's jobs queue and of its dead-letter queue. Raises
        BrokerUnavailable when the broker cannot be asked."""

    def close(self) -> None: ...


class Consumer(Protocol):
    def start(self) -> None:
        """Connect and consume in the background; reconnects with capped backoff."""

    def get(self, timeout: float) -> Delivery | None:
        """The next delivery, or None after ``timeout`` seconds."""

    @property
    def connected(self) -> bool: ...

    def stop_consuming(self) -> None:
        """No new deliveries from now on; deliveries already handed out can still be acked."""

    def announce_finished(self, job_ids: list[str]) -> None:
        """Tell the results services that these jobs' outcomes are in the store (a fanout, best
        effort: never raises, never blocks, and a notice lost on the way only delays an answer to
        the long-poll fallback). Call it after the outcomes were written. Never sent on the
        connection that consumes: a broker in a resource alarm blocks a connection that
        publishes, and the acks on it would stall."""

    def close(self) -> None:
        """Stop and disconnect. Unacked deliveries are returned to the queue by the broker."""


class FinishedListener(Protocol):
    """The results service's side of :meth:`Consumer.announce_finished`: hears which jobs the
    workers finished, so that a long-poll answers at once instead of on the next look at the
    store. Best effort: notices sent while it is disconnected are lost (the caller looks at the
    store after each (re)connect)."""

    def start(self, on_finished: Callable[[list[str]], None], on_connected: Callable[[], None]) -> None:
        """Listen in the background, reconnecting with capped backoff. ``on_finished(job_ids)`` and
        ``on_connected()`` run on the listener's thread and must return quickly."""

    @property
    def connected(self) -> bool: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class DeadLetter:
    """A message the broker dead-lettered: its job will never be delivered again."""

    body: bytes
    message_id: str | None  # the job id, as the gateway publishes it
    reason: str  # as RabbitMQ names it in x-death: "rejected" (a poison message), "delivery_limit"
    delivery_count: int  # deliveries before it was dead-lettered (0 when the broker does not say)


class DeadLetterConsumer(Protocol):
    """Consumes the dead-letter queue, so that no job stays queued or running once its message
    is gone (the worker's reconciler)."""

    def start(self, handle: Callable[[DeadLetter], bool]) -> None:
        """Consume in the background, reconnecting with capped backoff. ``handle`` runs on the
        consumer's thread: True removes the message for good, False has it delivered again a
        second later (the store was unreachable)."""

    @property
    def connected(self) -> bool: ...

    def close(self) -> None: ...
