"""Submitting a job: record it, store a large upload, publish it, and only then answer 202.

The order is the guarantee. The queued record is written first, so a GET on the status URL
right after the 202 finds it. An upload larger than ``claim_check_bytes`` is then stored in the
job store under the job's id (the claim check), and the message carries that reference instead
of the bytes, so the worker finds them when the message reaches it. The message is published with
a publisher confirm, so a 202 means the broker has it durably. If storing the upload or the
publish fails, the record (and its upload) is deleted again: a job the client was refused never
exists. The confirm is awaited apart from the rest (:func:`start`, then :func:`queue_confirmed` or
:func:`wait`): the gateway's event loop awaits it, so no thread of the gateway sits waiting for
the broker (docs/performance.md).

A gateway that dies between the two leaves a queued record with no message, and its client no
answer. The client's retry with the same Idempotency-Key finds that record: while it is still
queued the message is published again (a second message for a job is harmless: the worker skips
a finished job and writes one outcome), so the 202 it then gets means what every 202 means.

A client (an API key) has a bound on its queued jobs. It is checked once the record is written,
by counting that client's queued jobs in the store: of several submissions racing for the last
place, each counts the others' records, so together they never pass the bound (at worst all of
them are refused and retry). The gateway submits new jobs and the results service submits
retries, both through :func:`start`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

from classifier_common import metrics
from classifier_common.blocking import in_thread, outliving_cancel
from classifier_common.broker import Publisher
from classifier_common.catalog import available_models
from classifier_common.config import Settings
from classifier_common.domain import Job, JobStatus
from classifier_common.errors import (
    BrokerUnavailable,
    IdempotencyKeyReused,
    ModelNotServed,
    QueueFull,
    StoreUnavailable,
    TooManyQueued,
)
from classifier_common.messages import JobMessage
from classifier_common.store import JobStore

log = logging.getLogger(__name__)


def serving_pool(settings: Settings, model: str) -> str:
    """The worker pool whose queue a job of ``model`` goes to (a new job at the gateway, a retry at
    the results service); refused (422 ``model_not_served``, with the models some pool serves)
    when no pool serves it."""
    pool = settings.pool_for_model(model)
    if pool is None:
        raise ModelNotServed(
            f"no worker pool serves model {model!r}", {"model": model, "served_models": served_models(settings)}
        )
    return pool


def served_models(settings: Settings) -> list[str]:
    """The models some pool serves; the implicit pool without a model list serves every model
    whose weights are here."""
    listed = sorted(model for models in settings.pools.values() for model in models)
    if settings.pools_given or listed:
        return listed
    return sorted(spec.name for spec in available_models(settings.models_dir))


# A client at its bound waits for some of its jobs to start; workers take jobs within seconds.
TOO_MANY_QUEUED_RETRY_AFTER_S = 5


def _request(job: Job) -> tuple[object, ...]:
    """What the client asked for: a key reused with anything else is refused."""
    return job.model, job.source, job.image, job.image_sha256, job.callback_url, job.retry_of


def _message(store: JobStore, job: Job, upload: bytes | None, claim_check_bytes: int) -> bytes:
    """The queue message for ``job``: the upload inline, or stored first and referenced."""
    if upload is None or len(upload) <= claim_check_bytes:
        return JobMessage.for_job(job, upload).encode()
    store.put_upload(job.id, upload)
    log.info("upload stored in the job store", extra={"job_id": job.id, "bytes": len(upload)})
    return JobMessage.for_job(job, upload_ref=job.id).encode()


@dataclass
class Queuing:
    """A job recorded, its message handed to the broker (:func:`start`), its confirm to come:
    :func:`queue_confirmed` awaits it on an event loop, :func:`wait` on a thread."""

    job: Job
    pool: str
    created: bool  # False: the earlier job of an idempotent replay
    confirm: Future[None] | None  # None: nothing published (a replay of a job past queued)


def submit(
    store: JobStore,
    publisher: Publisher,
    job: Job,
    upload: bytes | None,
    pool: str,
    *,
    claim_check_bytes: int,
    max_queued_per_client: int = 0,
) -> tuple[Job, bool]:
    """:func:`start` and :func:`wait`, on the caller's thread."""
    return wait(
        store,
        start(
            store,
            publisher,
            job,
            upload,
            pool,
            claim_check_bytes=claim_check_bytes,
            max_queued_per_client=max_queued_per_client,
        ),
    )


def start(
    store: JobStore,
    publisher: Publisher,
    job: Job,
    upload: bytes | None,
    pool: str,
    *,
    claim_check_bytes: int,
    max_queued_per_client: int = 0,
    before_publish: Callable[[], None] | None = None,
) -> Queuing:
    """Records ``job`` and starts publishing it to the queue of ``pool`` (the pool serving its
    model); blocks on the store, not on the broker's confirm. Returns the job and whether it is
    new: the earlier job when this client sent the idempotency key before with the same request
    (the same key with another request raises IdempotencyKeyReused, 422). An upload larger than
    ``claim_check_bytes`` goes through the store. With ``max_queued_per_client`` (0: no bound)
    and a client (API keys on), a job that would give its client more queued jobs than that is
    refused with TooManyQueued (429) and never exists. ``before_publish`` is called once a new
    job is recorded, just before its message is published (the gateway's submit-and-wait starts
    waiting for it then). A refusal the broker gives at once is raised here, the job rolled back."""
    try:
        stored = store.create(job)
    except StoreUnavailable:
        metrics.JOBS_REJECTED.labels("store_unavailable").inc()
        raise
    if stored.id != job.id:
        if _request(stored) != _request(job):
            raise IdempotencyKeyReused(
                "this Idempotency-Key was used before with a different request",
                {"job_id": stored.id},
            )
        log.info("idempotent replay", extra={"job_id": stored.id, "idempotency_key": job.idempotency_key})
        confirm = None
        if stored.status is JobStatus.queued:
            # Its first publish may never have happened; we cannot tell, so publish (again). The
            # same request has the same bytes: storing the upload again keeps the first copy.
            message = _message(store, stored, upload, claim_check_bytes)
            confirm = publisher.start_publish(message, message_id=stored.id, pool=pool)
        return Queuing(stored, pool, False, confirm)
    if max_queued_per_client and job.client_id:
        _within_bound(store, job, max_queued_per_client)
    try:
        message = _message(store, job, upload, claim_check_bytes)
    except StoreUnavailable:
        metrics.JOBS_REJECTED.labels("store_unavailable").inc()
        _roll_back(store, job)
        raise
    if before_publish is not None:
        before_publish()
    queuing = Queuing(job, pool, True, None)
    try:
        queuing.confirm = publisher.start_publish(message, message_id=job.id, pool=pool)
    except (BrokerUnavailable, QueueFull) as exc:
        _refused(store, queuing, exc)
        raise
    return queuing


def wait(store: JobStore, queuing: Queuing) -> tuple[Job, bool]:
    """The job once the broker confirmed it, and whether it is new; a refusal (QueueFull,
    BrokerUnavailable) is raised, a new job rolled back first. Blocks."""
    if queuing.confirm is not None:
        try:
            queuing.confirm.result()
        except (BrokerUnavailable, QueueFull) as exc:
            _refused(store, queuing, exc)
            raise
    _queued(queuing)
    return queuing.job, queuing.created


async def queue_confirmed(store: JobStore, record: Callable[[], Queuing]) -> tuple[Job, bool]:
    """:func:`submit` from an event loop: ``record`` (a call of :func:`start`) on a thread, then the
    broker's confirm awaited on the loop, with no thread waiting for it; only a refusal's roll-back
    goes to a thread. A request canceled at any point still waits for what it began, so a refused
    job never stays behind and a queued one is counted."""
    return await outliving_cancel(asyncio.ensure_future(_record_and_confirm(store, record)))


async def _record_and_confirm(store: JobStore, record: Callable[[], Queuing]) -> tuple[Job, bool]:
    queuing = await in_thread(record)
    if queuing.confirm is not None:
        try:
            await asyncio.wrap_future(queuing.confirm)
        except (BrokerUnavailable, QueueFull) as exc:
            await in_thread(_refused, store, queuing, exc)
            raise
    _queued(queuing)
    return queuing.job, queuing.created


def _queued(queuing: Queuing) -> None:
    if not queuing.created:
        return
    job = queuing.job
    metrics.JOBS_SUBMITTED.labels(job.model, job.source).inc()
    log.info("job queued", extra={"job_id": job.id, "model": job.model, "pool": queuing.pool, "source": job.source})


def _refused(store: JobStore, queuing: Queuing, error: BrokerUnavailable | QueueFull) -> None:
    """The broker refused the message: a new job is removed again (a replayed one stays queued)."""
    if not queuing.created:
        return
    metrics.JOBS_REJECTED.labels("queue_full" if isinstance(error, QueueFull) else "broker_unavailable").inc()
    _roll_back(store, queuing.job)


def _within_bound(store: JobStore, job: Job, bound: int) -> None:
    """Refuse (and remove) the job just recorded if its client now has more than ``bound`` queued."""
    try:
        queued = store.count_queued(job.client_id)
    except StoreUnavailable:
        _roll_back(store, job)
        raise
    if queued > bound:
        metrics.JOBS_REJECTED.labels("too_many_queued").inc()
        _roll_back(store, job)
        raise TooManyQueued(
            f"this API key already has {bound} queued jobs; submit more once some have started",
            {"max_queued": bound},
            retry_after=TOO_MANY_QUEUED_RETRY_AFTER_S,
        )


def _roll_back(store: JobStore, job: Job) -> None:
    try:
        store.delete(job.id)  # the job and its stored upload
    except StoreUnavailable:
        # The record stays queued without a message; it was never acknowledged to the client. A
        # stored upload goes when the results service's purge finds its job gone.
        log.error("could not roll back a refused job", extra={"job_id": job.id})
