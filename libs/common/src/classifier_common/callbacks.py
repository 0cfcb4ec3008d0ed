"""Callbacks: the push alternative to polling. A job submitted with a ``callback_url`` is POSTed
there once it is finished, with the same JSON body ``GET /v1/jobs/{id}`` returns.

- Signed: ``X-Classifier-Signature: sha256=<hex>``, the HMAC-SHA256 of the exact body bytes
  under ``CLASSIFIER_CALLBACK_SECRET``. Without a secret the gateway refuses a ``callback_url``
  (422): an unsigned callback could not be told from a forgery.
- Durable and not duplicated across replicas: the store keeps each callback's state with its job
  (pending, delivered, failed; attempts; next attempt; a lease). A notifier
  (``classifier_results.notifier``) finds due
  callbacks and claims each attempt with one conditional update, so of several notifiers exactly
  one makes it; a notifier that dies mid-attempt loses its lease and another retries later.
- Bounded: an attempt that does not answer 2xx within ``callback_timeout_s`` is retried after
  ``callback_backoff_s``, doubling up to ``callback_backoff_max_s``, ``callback_max_attempts``
  attempts in all; then the callback is given up (logged, the job itself is unaffected).
- At least once: an attempt whose 2xx answer is lost (the notifier dies before recording it) is
  made again. Receivers deduplicate by job id (``X-Classifier-Job-Id``).
- Never in the worker's way: notifiers run in the results service, off the path that classifies,
  stores and acks.

This module holds the contract (signature, body, what may be a target); the delivery loop is the
results service's.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import socket
from urllib.parse import urlsplit

from classifier_common.domain import Job, job_view
from classifier_common.errors import InvalidInput

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Classifier-Signature"
JOB_ID_HEADER = "X-Classifier-Job-Id"
ATTEMPT_HEADER = "X-Classifier-Attempt"
MAX_URL_LENGTH = 2048


# -- the contract a receiver relies on -----------------------------------------------------------


def sign(body: bytes, secret: str) -> str:
    """The ``X-Classifier-Signature`` value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(body: bytes, secret: str, signature: str) -> bool:
    """What a receiver does: compare in constant time."""
    return hmac.compare_digest(sign(body, secret), signature)


def payload(job: Job) -> bytes:
    return json.dumps(job_view(job), separators=(",", ":")).encode()


# -- what may be a callback target ---------------------------------------------------------------


def _private(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def validate_url(url: str, *, allow_private: bool) -> str:
    """``url`` if it may receive callbacks, else InvalidInput (422): http or https, a host, no
    credentials, at most MAX_URL_LENGTH characters, and unless ``allow_private`` no literal
    loopback, private or link-local address and no ``localhost`` (names are resolved and checked
    again at delivery: :func:`resolves_to_private`)."""
    if len(url) > MAX_URL_LENGTH:
        raise InvalidInput(f"callback_url is longer than {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise InvalidInput("callback_url contains whitespace or control characters")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError as exc:
        raise InvalidInput(f"callback_url is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidInput("callback_url must be an http:// or https:// URL", {"scheme": parts.scheme})
    if not host:
        raise InvalidInput("callback_url has no host")
    if parts.username is not None or parts.password is not None:
        raise InvalidInput("callback_url must not carry credentials")
    if not allow_private:
        if host == "localhost" or host.endswith(".localhost"):
            raise InvalidInput("callback_url must not point at this machine")
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None and _private(literal):
            raise InvalidInput("callback_url must not point at a private, loopback or link-local address")
    return url


def resolves_to_private(host: str, port: int) -> bool:
    """Whether ``host`` resolves to an address :func:`validate_url` would refuse (checked at delivery)."""
    infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    return any(_private(ipaddress.ip_address(str(info[4][0]).split("%")[0])) for info in infos)
