"""The job queue on RabbitMQ (pika), one module per role:

- :mod:`.connection`: pika parameters from the broker URL, the errors a connection fails with and
  which of them will not heal (:func:`is_fatal`, :class:`BrokerRefused`);
- :mod:`.topology`: the queues and exchanges, described once, declared by every side;
- :mod:`.publisher`: the gateway's publisher with confirms, pipelined on one connection;
- :mod:`.consumer`: the workers' asynchronous consumer;
- :mod:`.notices`: finished-job notices, the workers' sender and the results service's listener;
- :mod:`.dead_letters`: the dead-letter queue's consumer (the workers' reconciler).
"""

from classifier_common.broker.rabbitmq.connection import (
    BACKOFF_MAX_S,
    BACKOFF_MIN_S,
    KEEPALIVE_INTERVAL_S,
    BrokerRefused,
    connection_parameters,
    describe,
    is_fatal,
)
from classifier_common.broker.rabbitmq.consumer import RabbitConsumer, RabbitDelivery
from classifier_common.broker.rabbitmq.dead_letters import (
    DEAD_LETTER_PREFETCH,
    DEAD_LETTER_RETRY_S,
    RabbitDeadLetterConsumer,
    dead_letter_from,
)
from classifier_common.broker.rabbitmq.notices import NOTICE_BACKLOG, RabbitFinishedListener
from classifier_common.broker.rabbitmq.publisher import PUBLISH_WINDOW, RabbitPublisher
from classifier_common.broker.rabbitmq.topology import Topology

__all__ = [
    "BACKOFF_MAX_S",
    "BACKOFF_MIN_S",
    "DEAD_LETTER_PREFETCH",
    "DEAD_LETTER_RETRY_S",
    "KEEPALIVE_INTERVAL_S",
    "NOTICE_BACKLOG",
    "PUBLISH_WINDOW",
    "BrokerRefused",
    "RabbitConsumer",
    "RabbitDeadLetterConsumer",
    "RabbitDelivery",
    "RabbitFinishedListener",
    "RabbitPublisher",
    "Topology",
    "connection_parameters",
    "dead_letter_from",
    "describe",
    "is_fatal",
]
