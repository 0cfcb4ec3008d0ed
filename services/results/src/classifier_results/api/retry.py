"""POST /v1/jobs/{id}/retry: a new job from a failed or canceled one, the two linked both ways
(``retry_of`` on the new job, ``retried_by`` on the old).

A job is retried at most once: the old job is claimed for the new one's id (one conditional write)
before the new job is submitted, and released again if the submission is refused, so two racing
retries make one job. A gallery job is retried from the gallery by name; an upload job from its
image kept in the store (an upload larger than the claim-check threshold is kept until its job's
retention ends); a smaller upload travelled in its message only, so that job cannot be retried
(409 ``upload_not_kept``): submit the file again. An Idempotency-Key works as for POST /v1/jobs:
the same key again answers the retry it made."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from classifier_common.blocking import in_thread
from classifier_common.broker import Publisher
from classifier_common.config import Settings
from classifier_common.deps import ClientIdDep, IdempotencyKeyDep, SettingsDep, StoreDep
from classifier_common.domain import RETRYABLE, Job, JobStatus, JobView, job_view, new_job_id, status_url, utcnow
from classifier_common.errors import (
    AlreadyRetried,
    ClassifierError,
    NotFound,
    NotRetryable,
    UploadNotKept,
)
from classifier_common.logs import request_id_var
from classifier_common.store import JobStore
from classifier_common.submission import serving_pool, submit
from classifier_common.web import ERROR_RESPONSE_SCHEMA
from classifier_results.api.jobs import job_id_path, owned_job, valid_id

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


def _retry_publisher(request: Request) -> Publisher:
    """The results service's own publisher (classifier_results.main.Results puts it there)."""
    return request.app.state.retry_publisher


@router.post(
    "/{job_id}/retry",
    status_code=202,
    summary="Retry a failed or canceled job",
    description="Queues a new job with the same model and gallery image. The new job names the old one in "
    "`retry_of`, and the old one names the new one in `retried_by`. A job is retried once; an upload job "
    "only when its image was kept (larger than the claim-check threshold; else 409 `upload_not_kept`).",
    response_model=JobView,
    responses={
        401: ERROR_RESPONSE_SCHEMA,
        404: ERROR_RESPONSE_SCHEMA,
        409: ERROR_RESPONSE_SCHEMA,
        422: ERROR_RESPONSE_SCHEMA,
        429: ERROR_RESPONSE_SCHEMA,
        503: ERROR_RESPONSE_SCHEMA,
    },
)
async def retry_job(
    request: Request,
    settings: SettingsDep,
    store: StoreDep,
    client_id: ClientIdDep,
    idempotency_key: IdempotencyKeyDep,
    job_id: str = job_id_path(),
) -> JSONResponse:
    old = await owned_job(store, valid_id(job_id), client_id)
    retry = Job(
        id=new_job_id(),
        status=JobStatus.queued,
        model=old.model,
        image=old.image,
        source=old.source,
        image_sha256=old.image_sha256,
        created_at=utcnow(),
        request_id=request_id_var.get(),
        idempotency_key=idempotency_key,
        client_id=client_id,
        callback_url=old.callback_url,
        retry_of=old.id,
    )
    publisher = _retry_publisher(request)
    job, created = await in_thread(_retry, store, publisher, settings, old, retry)
    headers = {"Location": status_url(job.id)}
    if not created:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(job_view(job), status_code=202, headers=headers)


def _retry(store: JobStore, publisher: Publisher, settings: Settings, old: Job, retry: Job) -> tuple[Job, bool]:
    pool = serving_pool(settings, old.model)  # the pools may have changed since the job ran
    upload = _kept_upload(store, old)
    if old.retried_by is not None:
        return _replay(store, publisher, settings, pool, old, retry, upload)
    if old.status not in RETRYABLE:
        raise NotRetryable(
            f"the job is {old.status.value}; only a failed or canceled job can be retried",
            {"status": old.status.value},
        )
    if not store.claim_retry(old.id, retry.id):
        # Another retry claimed it (or the job changed) since it was read.
        current = store.get(old.id)
        if current is None:
            raise NotFound(f"no job with id {old.id}")  # purged meanwhile
        return _replay(store, publisher, settings, pool, current, retry, upload)
    try:
        job, created = submit(
            store,
            publisher,
            retry,
            upload,
            pool,
            claim_check_bytes=settings.claim_check_bytes,
            max_queued_per_client=settings.max_queued_per_client,
        )
    except ClassifierError:
        store.release_retry(old.id, retry.id)
        raise
    if not created:
        # The Idempotency-Key had made another job: this retry was not made after all.
        store.release_retry(old.id, retry.id)
    return job, created


def _kept_upload(store: JobStore, old: Job) -> bytes | None:
    """An upload job's image: kept in the store (until the job's retention ends) when it was
    larger than the claim-check threshold; smaller ones travelled in their message only."""
    if old.source != "upload":
        return None
    upload = store.get_upload(old.id)
    if upload is None:
        raise UploadNotKept(
            "this job's uploaded image was not kept (only uploads larger than the claim-check threshold "
            "are), so it cannot be retried: submit the file again",
            {"source": "upload", "image": old.image},
        )
    return upload


def _replay(
    store: JobStore, publisher: Publisher, settings: Settings, pool: str, old: Job, retry: Job, upload: bytes | None
) -> tuple[Job, bool]:
    """The job was retried before: the same request again (its Idempotency-Key) answers that
    retry; anything else is a conflict that names it."""
    prior = store.get(old.retried_by) if old.retried_by else None
    if prior is not None and retry.idempotency_key is not None and prior.idempotency_key == retry.idempotency_key:
        # Finds the prior job by its key (and publishes it again if still queued).
        return submit(store, publisher, retry, upload, pool, claim_check_bytes=settings.claim_check_bytes)
    raise AlreadyRetried(
        "the job was retried already: follow its retried_by",
        {"retried_by": old.retried_by, "status_url": status_url(old.retried_by) if old.retried_by else None},
    )
