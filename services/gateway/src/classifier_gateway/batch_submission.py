"""Submitting a batch: each item as a job exactly as a single submission makes it
(:func:`classifier_common.submission.submit`), then the batch record, and only then the 202.

Each item stands alone: one that cannot be accepted (not an image, too large, an unknown gallery
name, the queue full) is recorded as refused with its own reason and the others go on. When
every item is refused nothing was queued and there is no batch: a refusal that will pass (queue
full 429, broker unavailable 503) is answered as such, so clients retry; otherwise 422
``batch_refused`` with each item's reason. A store that cannot be reached fails the whole
request (503): without it no batch can be recorded.

The batch record is written after its jobs, so a GET on the batch URL right after the 202 finds
every job. A gateway that dies in between leaves jobs without a batch and its client without an
answer; with an Idempotency-Key the retry derives the same batch id and the same per-item keys,
so each item's job is found again (and republished while still queued, as for a single job) and
the batch is recorded once. A replay of a recorded batch answers it unchanged.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Literal

from classifier_common import images
from classifier_common.batches import item_idempotency_key
from classifier_common.broker import Publisher
from classifier_common.domain import Batch, BatchItem, ItemError, Job, JobStatus, new_job_id, utcnow
from classifier_common.errors import (
    BatchRefused,
    ClassifierError,
    IdempotencyKeyReused,
    PayloadTooLarge,
    StoreUnavailable,
)
from classifier_common.images import Gallery
from classifier_common.store import JobStore
from classifier_common.submission import submit
from classifier_common.web.errors import PUBLIC_5XX_MESSAGES

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Item:
    """One image of the request: a gallery name, or an upload (``data`` None when it was larger
    than ``size_limit`` and was not kept)."""

    image: str
    source: Literal["gallery", "upload"]
    data: bytes | None = None
    size: int = 0


@dataclass(frozen=True)
class BatchRequest:
    id: str
    model: str
    pool: str  # the worker pool serving the model: every item's job goes to its queue
    items: list[Item]
    client_id: str
    idempotency_key: str | None
    callback_url: str | None
    request_id: str | None
    max_upload_bytes: int
    claim_check_bytes: int  # a larger upload is stored in the job store, not carried by its message
    max_queued_per_client: int = 0  # each item counts against its API key's bound on queued jobs

    def fingerprint(self) -> str:
        """What was asked: a replay with the same key must ask the same."""
        parts = [
            [item.source, item.image, hashlib.sha256(item.data).hexdigest() if item.data is not None else item.size]
            for item in self.items
        ]
        text = json.dumps([self.model, self.callback_url, parts])
        return hashlib.sha256(text.encode()).hexdigest()


def _refusal(exc: ClassifierError) -> ItemError:
    if exc.status_code >= 500:  # the cause stays in the log, as for a whole request
        return ItemError(code=exc.code, message=PUBLIC_5XX_MESSAGES.get(exc.code, "the service is unavailable"))
    return ItemError(code=exc.code, message=exc.message, details=exc.details)


def _accept(store: JobStore, publisher: Publisher, gallery: Gallery, request: BatchRequest, index: int) -> str:
    """Queue one item as a job; its id, or the ClassifierError that refuses it."""
    item = request.items[index]
    if item.source == "upload":
        if item.data is None:
            limit = request.max_upload_bytes
            raise PayloadTooLarge(
                f"the file is {item.size} bytes, larger than {limit} bytes", {"max_bytes": limit, "bytes": item.size}
            )
        images.inspect(item.data)
        digest = images.sha256(item.data)
    else:
        digest = gallery.sha256(item.image)
    job = Job(
        id=new_job_id(),
        status=JobStatus.queued,
        model=request.model,
        image=item.image,
        source=item.source,
        image_sha256=digest,
        created_at=utcnow(),
        request_id=request.request_id,
        idempotency_key=None if request.idempotency_key is None else item_idempotency_key(request.id, index),
        client_id=request.client_id,
        callback_url=request.callback_url,
        batch_id=request.id,
    )
    upload = item.data if item.source == "upload" else None
    stored, _ = submit(
        store,
        publisher,
        job,
        upload,
        request.pool,
        claim_check_bytes=request.claim_check_bytes,
        max_queued_per_client=request.max_queued_per_client,
    )
    return stored.id


def submit_batch(store: JobStore, publisher: Publisher, gallery: Gallery, request: BatchRequest) -> tuple[Batch, bool]:
    """Returns (the batch, True) when recorded now, or (the earlier batch, False) when this client
    sent the Idempotency-Key before with the same request; with another request the key raises
    IdempotencyKeyReused (422)."""
    fingerprint = request.fingerprint()
    if request.idempotency_key is not None:
        earlier = store.get_batch(request.id)
        if earlier is not None:
            return _replay(earlier, fingerprint, request), False
    outcomes: list[BatchItem] = []
    refusals: list[ClassifierError] = []
    for index, item in enumerate(request.items):
        try:
            job_id = _accept(store, publisher, gallery, request, index)
            outcomes.append(BatchItem(index=index, image=item.image, source=item.source, job_id=job_id))
        except StoreUnavailable:
            raise
        except ClassifierError as exc:
            refusals.append(exc)
            outcomes.append(BatchItem(index=index, image=item.image, source=item.source, error=_refusal(exc)))
    if len(refusals) == len(request.items):
        passing = [exc for exc in refusals if exc.status_code in (429, 503)]
        if len(passing) == len(refusals):
            raise passing[0]  # 429 or 503 with Retry-After: the same request may pass later
        raise BatchRefused(
            f"every one of the {len(request.items)} items was refused; nothing was queued",
            {"items": [outcome.model_dump(mode="json", include={"index", "image", "error"}) for outcome in outcomes]},
        )
    batch = Batch(
        id=request.id,
        model=request.model,
        created_at=utcnow(),
        items=outcomes,
        client_id=request.client_id,
        idempotency_key=request.idempotency_key,
        request_sha256=fingerprint,
        callback_url=request.callback_url,
    )
    stored = store.create_batch(batch)
    if stored.created_at != batch.created_at or stored.items != batch.items:
        return _replay(stored, fingerprint, request), False  # a concurrent identical request won
    log.info(
        "batch queued",
        extra={"batch_id": batch.id, "model": batch.model, "accepted": len(outcomes) - len(refusals)},
    )
    return batch, True


def _replay(earlier: Batch, fingerprint: str, request: BatchRequest) -> Batch:
    if earlier.request_sha256 != fingerprint:
        raise IdempotencyKeyReused(
            "this Idempotency-Key was used before with a different request", {"batch_id": earlier.id}
        )
    log.info("idempotent batch replay", extra={"batch_id": earlier.id, "idempotency_key": request.idempotency_key})
    return earlier
