"""The callback notifier: delivers due callbacks (the contract a receiver relies on, and what may
be a target, are in :mod:`classifier_common.callbacks`).

Runs in the results service, never in a worker: a slow receiver must never hold up the path that
classifies, stores and acks. Several results replicas share the work through the store's claims.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import httpx

from classifier_common.callbacks import (
    ATTEMPT_HEADER,
    JOB_ID_HEADER,
    SIGNATURE_HEADER,
    payload,
    resolves_to_private,
    sign,
)
from classifier_common.config import Settings
from classifier_common.domain import Job, utcnow
from classifier_common.errors import StoreUnavailable
from classifier_common.store import JobStore

log = logging.getLogger(__name__)

USER_AGENT = "classifier-callbacks/1"
# A claim outlives the attempt's own timeout by this much before another notifier may retry.
LEASE_MARGIN_S = 30.0
BATCH = 50  # due callbacks read per round


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
                if resolves_to_private(parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)):
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
