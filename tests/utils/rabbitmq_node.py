"""A RabbitMQ node of a test's own: devstack.rabbitmq_node, which the benchmark uses too."""

from devstack.rabbitmq_node import RabbitNode, rabbit_node

__all__ = ["RabbitNode", "rabbit_node"]
