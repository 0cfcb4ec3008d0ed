"""Callbacks: the push alternative to polling. A job submitted with a ``callback_url`` is POSTed
there once it is finished, with the same JSON body ``GET /v1/jobs/{id}`` returns.

- Signed: ``X-Classifier-Signature: sha256=<hex>``, the HMAC-SHA256 of the exact body bytes
  under ``CLASSIFIER_CALLBACK_SECRET``. Without a secret the gateway refuses a ``callback_url``
  (422): an unsigned callback could not be told from a forgery.
- Durable and not duplicated across replicas: the store keeps each callback's state with its job
  (pending, delivered, failed; attempts; next attempt; a lease). A :class:`Notifier` finds due
  callbacks and claims each attempt with one conditional update, so of several notifiers exactly
  one makes it; a notifier that dies mid-attempt loses its lease and another retries later.
- Bounded: an attempt that does not answer 2xx within ``callback_timeout_s`` is retried after
  ``callback_backoff_s``, doubling up to ``callback_backoff_max_s``, ``callback_max_attempts``
  attempts in all; then the callback is given up (logged, the job itself is unaffected).
- At least once: an attempt whose 2xx answer is lost (the notifier dies before recording it) is
  made again. Receivers deduplicate by job id (``X-Classifier-Job-Id``).
- Never in the worker's way: notifiers run in the results service (and in the embedded gateway),
  off the path that classifies, stores and acks.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import socket
import threading
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import httpx

from classifier_common.config import Settings
from classifier_common.domain import Job, job_view, utcnow
from classifier_common.errors import InvalidInput, StoreUnavailable
from classifier_common.store import JobStore

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Classifier-Signature"
JOB_ID_HEADER = "X-Classifier-Job-Id"
ATTEMPT_HEADER = "X-Classifier-Attempt"
MAX_URL_LENGTH = 2048
USER_AGENT = "classifier-callbacks/1"
# A claim outlives the attempt's own timeout by this much before another notifier may retry.
LEASE_MARGIN_S = 30.0
BATCH = 50  # due callbacks read per round


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
    again at delivery)."""
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


def _resolves_to_private(host: str, port: int) -> bool:
    infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    return any(_private(ipaddress.ip_address(info[4][0].split("%")[0])) for info in infos)


# -- delivery ------------------------------------------------------------------------------------


class Notifier:
    """Delivers due callbacks: :meth:`run_once` for one round, :meth:`start` for a background
    thread that runs a round every ``callback_poll_s``. Attempts run one after another; each is
    bounded by ``callback_timeout_s``."""

    def __init__(self, store: JobStore, settings: Settings, client: httpx.Client | None = None):
        if settings.callback_secret is None:
            raise ValueError("callbacks need CLASSIFIER_CALLBACK_SECRET")
        self.store = store
        self.settings = settings
        self._secret = settings.callback_secret.get_secret_value()
        # No redirects (a 3xx is a failed attempt, not a hop to a target nobody validated) and
        # no proxies from the environment.
        self._client = client or httpx.Client(
            timeout=settings.callback_timeout_s, follow_redirects=False, trust_env=False
        )

    def backoff(self, attempt: int) -> float:
        """Seconds before the attempt after ``attempt`` (1-based)."""
        s = self.settings
        return min(s.callback_backoff_max_s, s.callback_backoff_s * 2 ** (attempt - 1))

    def run_once(self) -> int:
        """Make every attempt that is due now; returns how many were made."""
        made = 0
        for job in self.store.callbacks_due(utcnow(), limit=BATCH):
            now = utcnow()
            lease = now + timedelta(seconds=self.settings.callback_timeout_s + LEASE_MARGIN_S)
            attempt = self.store.claim_callback(job.id, now, lease)
            if attempt is None:
                continue  # another notifier took it
            self._attempt(job, attempt)
            made += 1
        return made

    def _attempt(self, job: Job, attempt: int) -> None:
        assert job.callback_url is not None
        error = self._post(job, attempt)
        extra = {"job_id": job.id, "request_id": job.request_id, "attempt": attempt}
        if error is None:
            self.store.settle_callback(job.id, "delivered")
            log.info("callback delivered", extra=extra)
        elif attempt >= self.settings.callback_max_attempts:
            self.store.settle_callback(job.id, "failed", error=error)
            log.warning("callback given up after %d attempts: %s", attempt, error, extra=extra)
        else:
            next_at: datetime = utcnow() + timedelta(seconds=self.backoff(attempt))
            self.store.settle_callback(job.id, "retry", next_at=next_at, error=error)
            log.info("callback attempt failed (%s); next in %.1f s", error, self.backoff(attempt), extra=extra)

    def _post(self, job: Job, attempt: int) -> str | None:
        """None if the receiver answered 2xx, else what went wrong."""
        url = job.callback_url or ""
        parts = urlsplit(url)
        if not self.settings.callback_allow_private:
            try:
                if _resolves_to_private(parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)):
                    return "callback_url resolves to a private, loopback or link-local address"
            except OSError as exc:
                return f"callback_url host does not resolve: {exc}"
        body = payload(job)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            SIGNATURE_HEADER: sign(body, self._secret),
            JOB_ID_HEADER: job.id,
            ATTEMPT_HEADER: str(attempt),
        }
        try:
            response = self._client.post(url, content=body, headers=headers)
        except Exception as exc:  # refused, reset, timed out, invalid: all a failed attempt
            return f"{type(exc).__name__}: {exc}"
        if 200 <= response.status_code < 300:
            return None
        return f"the receiver answered {response.status_code}"

    def start(self, stop: threading.Event) -> threading.Thread:
        def loop() -> None:
            while not stop.wait(self.settings.callback_poll_s):
                try:
                    self.run_once()
                except StoreUnavailable:
                    log.warning("callbacks skipped this round: store unavailable")
                except Exception:  # the loop must outlive any surprise; the next round tries again
                    log.exception("callback round failed")
            self._client.close()

        thread = threading.Thread(target=loop, name="callbacks", daemon=True)
        thread.start()
        return thread


def start_notifier(store: JobStore, settings: Settings, stop: threading.Event) -> threading.Thread | None:
    """The notifier thread of a process that serves results, when callbacks are enabled."""
    if settings.callback_secret is None:
        return None
    return Notifier(store, settings).start(stop)
