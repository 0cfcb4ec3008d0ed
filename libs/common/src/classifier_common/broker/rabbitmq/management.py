"""RabbitMQ's management HTTP API, read for the one count AMQP does not give: a queue's messages
delivered to consumers and not acknowledged yet (GET /v1/stats). Best effort: any failure is
logged and answers None, and the operator view shows the count as unknown."""

from __future__ import annotations

import logging
from urllib.parse import quote, urlsplit

import httpx

log = logging.getLogger(__name__)

TIMEOUT_S = 2.0


def unacked(management_url: str, vhost: str, queue: str) -> int | None:
    """``messages_unacknowledged`` of ``queue`` in ``vhost``; None when the API cannot say."""
    url = f"{management_url.rstrip('/')}/api/queues/{quote(vhost, safe='')}/{quote(queue, safe='')}"
    try:
        response = httpx.get(url, timeout=TIMEOUT_S)  # credentials in the URL are sent as basic auth
        response.raise_for_status()
        return int(response.json()["messages_unacknowledged"])
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        # Only the host: the URL may hold a password.
        log.warning("RabbitMQ management API at %s did not say: %s", urlsplit(management_url).hostname, exc)
        return None
