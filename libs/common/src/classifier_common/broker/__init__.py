"""The job queue. Build adapters with :func:`connect_publisher` / :func:`connect_consumer`; the
broker URL's scheme picks the adapter:

- ``memory://`` or ``memory://NAME``: the in-process broker registered under that URL (the
  embedded default), shared by every publisher and consumer built from the same URL;
- ``amqp://`` / ``amqps://``: RabbitMQ.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from classifier_common.broker.base import (
    DEAD_LETTER_EXCHANGE,
    Consumer,
    DeadLetter,
    DeadLetterConsumer,
    Delivery,
    FinishedListener,
    Publisher,
    dead_letter_queue,
    finished_exchange,
)
from classifier_common.config import Settings

__all__ = [
    "DEAD_LETTER_EXCHANGE",
    "Consumer",
    "DeadLetter",
    "DeadLetterConsumer",
    "Delivery",
    "FinishedListener",
    "Publisher",
    "connect_consumer",
    "connect_dead_letters",
    "connect_listener",
    "connect_publisher",
    "dead_letter_queue",
    "finished_exchange",
]

_RABBITMQ_SCHEMES = ("amqp", "amqps")


def _scheme(settings: Settings) -> str:
    scheme = urlsplit(settings.broker_url).scheme
    if scheme != "memory" and scheme not in _RABBITMQ_SCHEMES:
        # Only the scheme: the URL may hold a password.
        raise ValueError(f"unsupported broker URL scheme {scheme!r}: use memory://, amqp:// or amqps://")
    return scheme


def connect_publisher(settings: Settings) -> Publisher:
    """Publishes to every pool's queue (``settings.pools``). For RabbitMQ this connects at once:
    it raises ``BrokerRefused`` for bad credentials or a conflicting queue, and starts unready
    (reconnecting in the background) if the broker is down."""
    if _scheme(settings) == "memory":
        from classifier_common.broker import memory

        return memory.MemoryPublisher(memory.brokers_for(settings))
    from classifier_common.broker.rabbitmq import RabbitPublisher

    return RabbitPublisher(settings)


def connect_consumer(settings: Settings) -> Consumer:
    """Consumes the queue of ``settings.pool``. Not started yet: call ``start()``."""
    if _scheme(settings) == "memory":
        from classifier_common.broker import memory

        return memory.MemoryConsumer(memory.broker_for(settings), settings.prefetch)
    from classifier_common.broker.rabbitmq import RabbitConsumer

    return RabbitConsumer(settings)


def connect_listener(settings: Settings) -> FinishedListener:
    """Not started yet: call ``start()``. In-process for ``memory://`` (the embedded worker
    announces to it directly)."""
    if _scheme(settings) == "memory":
        from classifier_common.broker import memory

        return memory.MemoryFinishedListener(memory.notices_for(settings))
    from classifier_common.broker.rabbitmq import RabbitFinishedListener

    return RabbitFinishedListener(settings)


def connect_dead_letters(settings: Settings) -> DeadLetterConsumer:
    """The dead-letter queue's consumer of ``settings.pool``. Not started yet: call ``start()``."""
    if _scheme(settings) == "memory":
        from classifier_common.broker import memory

        return memory.MemoryDeadLetterConsumer(memory.broker_for(settings))
    from classifier_common.broker.rabbitmq import RabbitDeadLetterConsumer

    return RabbitDeadLetterConsumer(settings)
