"""What a worker does with a batch of deliveries: decide each one's fate, classify, store, ack.

Order of events for one job, and why:
1. decode the message; a poison message is dead-lettered (it can never succeed);
2. ``store.start``: running, attempts+1. A job already finished (a redelivery after the result was
   written) is acked without running again; a job past ``max_attempts`` is failed;
3. result cache, else read the image (inline in the message, from the gallery, or an upload kept
   in the job store: the claim check), preprocess and run the model;
4. write the outcome (conditional: exactly once), THEN ack. A crash between 3 and 4 means the
   broker redelivers and the job runs again; a crash after the write means the redelivery is
   acked at step 2. Either way the store ends with exactly one outcome.
5. ``process`` returns the ids of the jobs whose outcome it wrote; the worker announces them to
   the results services (``Consumer.announce_finished``), which wake the requests waiting on them.
   The list belongs to the call, so worker threads sharing one Processor never see each other's.

Each delivery meets its fate alone: a message that cannot be parsed, whatever the exception, is
dead-lettered; an image that cannot be decoded, whatever the exception, fails its job
(``invalid_image``); any other unexpected error gives that one delivery back to the broker, whose
delivery limit bounds the retries. A batch never fails as a unit: when a forward pass over several
images fails, each image is run again on its own, so that only the one that fails is retried.

A store outage is waited out in place, holding the delivery (see :meth:`Processor._with_store`):
requeueing at once would spend the broker's delivery limit, which is there to stop crash loops,
on an outage, and throw away a result already computed. Only after about a minute of failed
retries is the message given back.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from PIL import Image

from classifier_common import metrics
from classifier_common.broker import Delivery
from classifier_common.catalog import ModelSpec
from classifier_common.domain import JobError, JobResult, utcnow
from classifier_common.errors import ClassifierError, ImageRejected, PoisonMessage, StoreUnavailable
from classifier_common.images import Gallery
from classifier_common.logs import job_context
from classifier_common.messages import JobMessage, decode
from classifier_common.store import CacheKey, JobStore
from classifier_worker.models import LoadedModel
from classifier_worker.preprocess import decode as decode_image

log = logging.getLogger(__name__)

STORE_RETRY_DELAY_S = 1.0
# Retries of a store call in place: delays double from STORE_RETRY_DELAY_S up to the cap, so
# 1 + 2 + 4 + 8 x 7 = 63 s of waiting (plus the store's own timeouts) before giving the message back.
STORE_RETRIES = 10
STORE_RETRY_MAX_DELAY_S = 8.0

T = TypeVar("T")

# A job whose stored upload is gone (deleted by hand, or the store restored from a backup without it).
UPLOAD_MISSING = "upload_missing"


@dataclass
class _Work:
    delivery: Delivery
    message: JobMessage
    attempts: int
    image: Image.Image | None = None
    preprocess_s: float = 0.0


class Processor:
    def __init__(
        self,
        store: JobStore,
        models: dict[str, LoadedModel],
        gallery_dir: Path,
        *,
        max_attempts: int,
        result_cache: bool,
        worker_id: str = "",
    ):
        self.store = store
        self.models = models
        self.gallery = Gallery(gallery_dir)
        self.max_attempts = max_attempts
        self.result_cache = result_cache
        self.worker_id = worker_id

    def process(self, deliveries: list[Delivery]) -> list[str]:
        """Handle a batch; every delivery is acked or rejected before this returns, each on its
        own. The ids of the jobs whose outcome this call wrote."""
        finished: list[str] = []
        by_model: dict[str, list[_Work]] = defaultdict(list)
        for delivery in deliveries:
            work = self._admit(delivery, finished)
            if work is not None:
                by_model[work.message.model].append(work)
        for model_name, works in by_model.items():
            try:
                self._run(self.models[model_name], works, finished)
            except Exception:  # a bug outside the per-delivery guards: what is not settled goes back
                for work in works:
                    self._unexpected(work.delivery, model_name)
        return finished

    # -- step 1-3: admit one delivery ---------------------------------------------------------
    def _admit(self, delivery: Delivery, finished: list[str]) -> _Work | None:
        try:
            message = decode(delivery.body)
        except Exception as exc:  # PoisonMessage, or anything the parser met (a bug): never retried
            log.error(
                "poison message dead-lettered: %s",
                exc if isinstance(exc, PoisonMessage) else f"{type(exc).__name__}: {exc}",
                extra={"body_prefix": delivery.body[:200].decode("utf-8", "replace")},
            )
            metrics.JOBS_PROCESSED.labels("unknown", "dead_lettered").inc()
            delivery.reject(requeue=False)
            return None
        with job_context(message.job_id, message.request_id):
            try:
                return self._admit_message(delivery, message, finished)
            except Exception:
                self._unexpected(delivery, message.model)
                return None

    def _admit_message(self, delivery: Delivery, message: JobMessage, finished: list[str]) -> _Work | None:
        model = message.model
        try:
            job = self._with_store(lambda: self.store.start(message.job_id, utcnow()))
        except StoreUnavailable as exc:
            self._retry_later(delivery, model, f"store unavailable: {exc.message}")
            return None
        if job is None:
            # The gateway rolls a job back when its publish fails; a message can still arrive if
            # the broker took it before the failure was seen. Nothing to do for it.
            log.warning("message for a job that is not in the store; dropped")
            metrics.JOBS_PROCESSED.labels(model, "skipped").inc()
            delivery.ack()
            return None
        if job.status.finished:
            log.info("job already %s; delivery acked without running", job.status.value)
            metrics.JOBS_PROCESSED.labels(model, "skipped").inc()
            delivery.ack()
            return None
        assert job.started_at is not None  # store.start set it
        metrics.QUEUE_WAIT.labels(model).observe(max(0.0, (job.started_at - job.created_at).total_seconds()))
        if job.attempts > self.max_attempts:
            # Earlier attempts ended without an outcome (the worker died holding it): give up.
            # The broker allows one delivery more than max_attempts so that this can be written.
            self._fail(delivery, message, "too_many_attempts", f"gave up after {self.max_attempts} attempts", finished)
            return None
        loaded = self.models.get(model)
        if loaded is None:
            self._fail(
                delivery, message, "model_unavailable", f"model {model!r} is not loaded by this worker", finished
            )
            return None
        if self.result_cache:
            key = CacheKey(model, loaded.version, message.image_sha256)
            try:
                cached = self._with_store(lambda: self.store.cache_get(key))
            except StoreUnavailable as exc:
                self._retry_later(delivery, model, f"store unavailable: {exc.message}")
                return None
            metrics.RESULT_CACHE.labels(model, "hit" if cached else "miss").inc()
            if cached is not None:
                self._succeed(delivery, message, cached.model_copy(update={"cached": True}), finished)
                return None
        started = time.perf_counter()
        try:
            data = message.upload_bytes()
            if message.upload_ref is not None:
                ref = message.upload_ref
                data = self._with_store(lambda: self.store.get_upload(ref))
                if data is None:
                    text = "the uploaded image is no longer in the job store; submit it again"
                    self._fail(delivery, message, UPLOAD_MISSING, text, finished)
                    return None
            elif data is None:
                data = self.gallery.read(message.image)
        except StoreUnavailable as exc:
            self._retry_later(delivery, model, f"store unavailable: {exc.message}")
            return None
        except ClassifierError as exc:
            self._fail(delivery, message, exc.code, exc.message, finished)
            return None
        except OSError as exc:
            self._fail(delivery, message, "image_unreadable", f"the image could not be read: {exc}", finished)
            return None
        try:
            image = decode_image(data, loaded.spec)
        except ClassifierError as exc:
            self._fail(delivery, message, exc.code, exc.message, finished)
            return None
        except Exception as exc:  # whatever the decoder met in these bytes is this image's fault alone
            log.warning("image decoding raised %s", type(exc).__name__, exc_info=True)
            text = f"the image could not be decoded: {type(exc).__name__}: {exc}"
            self._fail(delivery, message, ImageRejected.code, text, finished)
            return None
        elapsed = time.perf_counter() - started
        metrics.PREPROCESS_SECONDS.labels(model).observe(elapsed)
        return _Work(delivery, message, job.attempts, image, elapsed)

    # -- step 3-4: run a batch of one model ---------------------------------------------------
    def _run(self, loaded: LoadedModel, works: list[_Work], finished: list[str]) -> None:
        spec: ModelSpec = loaded.spec
        started = time.perf_counter()
        try:
            predictions = loaded.predict([w.image for w in works if w.image is not None])
        except Exception:  # a model failure is a bug or a resource problem: retry, bounded
            log.exception("inference failed", extra={"model": spec.name, "batch": len(works)})
            if len(works) > 1:
                # Which image failed is unknown: each runs alone, so the others are not retried for it.
                for work in works:
                    self._run(loaded, [work], finished)
                return
            work = works[0]
            with job_context(work.message.job_id, work.message.request_id):
                try:
                    if work.attempts >= self.max_attempts:
                        self._fail(
                            work.delivery, work.message, "inference_failed", "the model failed on this image", finished
                        )
                    else:
                        self._retry_later(work.delivery, spec.name, "inference failed", delay=False)
                except Exception:
                    self._unexpected(work.delivery, spec.name)
            return
        elapsed = time.perf_counter() - started
        metrics.INFERENCE_SECONDS.labels(spec.name).observe(elapsed)
        metrics.BATCH_SIZE.labels(spec.name).observe(len(works))
        for work, top5 in zip(works, predictions, strict=True):
            with job_context(work.message.job_id, work.message.request_id):
                try:
                    result = JobResult(
                        predictions=top5,
                        model_version=loaded.version,
                        inference_ms=round((elapsed / len(works) + work.preprocess_s) * 1000, 3),
                    )
                    if self.result_cache:
                        try:
                            key = CacheKey(spec.name, loaded.version, work.message.image_sha256)
                            self.store.cache_put(key, result)
                        except StoreUnavailable:
                            log.warning("result cache write failed; continuing")
                    self._succeed(work.delivery, work.message, result, finished)
                except Exception:
                    self._unexpected(work.delivery, spec.name)

    # -- outcomes ------------------------------------------------------------------------------
    def _succeed(self, delivery: Delivery, message: JobMessage, result: JobResult, finished: list[str]) -> None:
        try:
            wrote = self._with_store(lambda: self.store.finish(message.job_id, result, utcnow()))
        except StoreUnavailable as exc:
            self._retry_later(delivery, message.model, f"result not stored: {exc.message}")
            return
        top = result.predictions[0]
        log.info(
            "job succeeded" if wrote else "job was already finished; result discarded",
            extra={
                "model": message.model,
                "label": top.label,
                "score": round(top.score, 4),
                "cached": result.cached,
                "worker_id": self.worker_id,
            },
        )
        metrics.JOBS_PROCESSED.labels(message.model, "succeeded" if wrote else "skipped").inc()
        if wrote:
            finished.append(message.job_id)
        delivery.ack()

    def _fail(self, delivery: Delivery, message: JobMessage, code: str, text: str, finished: list[str]) -> None:
        try:
            self._with_store(lambda: self.store.fail(message.job_id, JobError(code=code, message=text), utcnow()))
        except StoreUnavailable as exc:
            self._retry_later(delivery, message.model, f"failure not stored: {exc.message}")
            return
        log.warning("job failed: %s", text, extra={"model": message.model, "error_code": code})
        metrics.JOBS_PROCESSED.labels(message.model, "failed").inc()
        finished.append(message.job_id)
        delivery.ack()

    def _with_store(self, call: Callable[[], T]) -> T:
        """``call()``, retried in place with capped backoff while the store is unavailable;
        raises StoreUnavailable once the retries are spent (the caller then requeues)."""
        delay = STORE_RETRY_DELAY_S
        for _ in range(STORE_RETRIES):
            try:
                return call()
            except StoreUnavailable as exc:
                log.warning("store unavailable (%s); retrying in %.1f s", exc.message, delay)
                time.sleep(delay)
                delay = min(delay * 2, STORE_RETRY_MAX_DELAY_S)
        return call()

    def _unexpected(self, delivery: Delivery, model: str) -> None:
        """A bug met while handling this one delivery (called from an ``except``): it alone goes
        back to the broker. Already settled, the reject is a no-op."""
        log.exception("unexpected error handling a delivery; it alone is requeued")
        try:
            self._retry_later(delivery, model, "unexpected error", delay=False)
        except Exception:  # the broker adapter failed too: the delivery is redelivered when its channel goes
            log.exception("could not requeue the delivery")

    def _retry_later(self, delivery: Delivery, model: str, why: str, delay: bool = True) -> None:
        """A transient problem: give the message back. The broker bounds redeliveries."""
        log.warning("job requeued: %s", why, extra={"delivery_count": delivery.delivery_count})
        metrics.JOBS_PROCESSED.labels(model, "requeued").inc()
        if delay:
            time.sleep(STORE_RETRY_DELAY_S)  # don't spin while the store is down
        delivery.reject(requeue=True)
