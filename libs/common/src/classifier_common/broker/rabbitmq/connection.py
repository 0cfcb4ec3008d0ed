"""Connecting to RabbitMQ: pika parameters from the broker URL, the errors a connection can fail
with, and which of them will not heal by reconnecting."""

from __future__ import annotations

import logging
from urllib.parse import parse_qs, urlsplit

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingConnection
from pika.adapters.utils.io_services_utils import _AsyncTransportBase

log = logging.getLogger(__name__)

# How much every connection reads from its socket at once. pika reads 4 KB at a time and, after
# each read, appends it to the frame it is assembling and parses that frame's header again: a
# worker took about 30 reads for a 120 KB photo's delivery, 0.35 to 0.45 ms of CPU per message
# more than with reads of 64 KB (docs/performance.md). pika has no setting for it; its transport's
# class attribute is the one place it is read. 64 KB stays below glibc's first mmap threshold
# (128 KB), so even a one-byte read is not a mapping of its own.
RECV_BYTES = 64 * 1024
_AsyncTransportBase._MAX_RECV_BYTES = RECV_BYTES  # noqa: SLF001

# Reconnection backoff: 0.5 s doubling up to 10 s.
BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 10.0

# Idle connections (the publisher's, the notice sender's) are serviced this often, so heartbeats
# flow and a connection the broker closed is noticed (and readiness turns false) within a second.
KEEPALIVE_INTERVAL_S = 1.0

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
CONNECTION_ERRORS = (pika.exceptions.AMQPError, OSError)


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


def where(params: pika.ConnectionParameters) -> str:
    """The broker's address for log lines, without credentials."""
    return f"{params.host}:{params.port}{params.virtual_host}"


def close_quietly(connection: BlockingConnection) -> None:
    try:
        if connection.is_open:
            connection.close()
    except CONNECTION_ERRORS as exc:
        log.debug("closing a broken broker connection: %s", describe(exc))
