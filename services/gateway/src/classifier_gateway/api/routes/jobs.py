"""POST /v1/jobs: a gallery image by name (JSON) or an uploaded file (multipart); GET /v1/jobs: the
client's jobs, newest first, a page at a time (the routes of one job are the results service's)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from classifier_common import images
from classifier_common.blocking import in_thread
from classifier_common.deps import StoreDep
from classifier_common.domain import Job, JobPage, JobStatus, JobView, job_view, new_job_id, status_url, utcnow
from classifier_common.errors import NotAnImage, PayloadTooLarge, StoreUnavailable
from classifier_common.logs import request_id_var
from classifier_common.store import JobQuery, JobStore
from classifier_common.submission import Queuing, queue_confirmed, start
from classifier_common.waiter import MAX_WAIT_S, JobWaiter, Waiting
from classifier_common.web import ERROR_RESPONSE_SCHEMA
from classifier_gateway.api import body, listing
from classifier_gateway.api.deps import ClientIdDep, SubmissionDep
from classifier_gateway.api.routes.models import model_and_pool

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.post(
    "",
    status_code=202,
    summary="Submit a classification job",
    description='JSON `{"model", "image"}` names a gallery image; multipart `file` + `model` uploads one. '
    "Answers 202 once the job is durably queued, with `Location` = its status URL. With `wait`, the "
    "answer waits up to that many seconds for the job to finish: 200 with the finished job "
    "(succeeded, failed or canceled) if it does, else the same 202 as without it — one request "
    "instead of a submit and a long-poll.",
    response_model=JobView,
    openapi_extra={"requestBody": body.REQUEST_BODY},
    responses={
        200: {"model": JobView, "description": "With `wait`: the job finished within it"},
        401: ERROR_RESPONSE_SCHEMA,
        413: ERROR_RESPONSE_SCHEMA,
        415: ERROR_RESPONSE_SCHEMA,
        422: ERROR_RESPONSE_SCHEMA,
        429: ERROR_RESPONSE_SCHEMA,
        503: ERROR_RESPONSE_SCHEMA,
    },
)
async def create_job(
    request: Request,
    submission: SubmissionDep,
    wait: Annotated[
        float,
        Query(ge=0, le=MAX_WAIT_S, description="Wait up to this many seconds for the job to finish (200 if it does)"),
    ] = 0,
) -> JSONResponse:
    parts, client_id, idempotency_key = submission.parts, submission.client_id, submission.idempotency_key
    settings, store, publisher, gallery = parts.settings, parts.store, parts.publisher, parts.gallery
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > settings.max_upload_bytes + body.MULTIPART_OVERHEAD:
        raise PayloadTooLarge(
            f"request body is larger than {settings.max_upload_bytes} bytes", {"max_bytes": settings.max_upload_bytes}
        )
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    upload: bytes | None = None
    source: Literal["gallery", "upload"]
    callback: object  # the JSON body's str | None, or the multipart field as sent; body.callback_url checks it
    if content_type == "application/json":
        req = await body.parse_json(request)
        model_name, image_name, source, callback = req.model, req.image, "gallery", req.callback_url
    elif content_type == "multipart/form-data":
        model_name, image_name, upload, callback = await body.parse_multipart(request, settings.max_upload_bytes)
        source = "upload"
    else:
        raise NotAnImage(
            f"unsupported content type {content_type or '(none)'!r}: send application/json or multipart/form-data",
            {"accepted": ["application/json", "multipart/form-data"]},
        )

    callback_url = body.callback_url(callback, settings)
    spec, pool = model_and_pool(settings, model_name)
    request_id = request_id_var.get()
    job_id = new_job_id()
    # With wait, the wait starts once the job is recorded, before its message is published: its
    # notice then answers it (JobWaiter.expect).
    loop = asyncio.get_running_loop()
    expected: list[Waiting] = []

    def expect() -> None:
        waiting = parts.waiter.expect(job_id, loop)
        if waiting is not None:
            expected.append(waiting)

    def accept() -> Queuing:
        # Everything that blocks (reading the gallery file or decoding the upload to check it, the
        # store insert, handing the message to the publisher) in one hand-off to a thread; the
        # broker's confirm is awaited here, on the event loop.
        if upload is not None:
            images.inspect(upload)
            digest = images.sha256(upload)
        else:
            digest = gallery.sha256(image_name)
        job = Job(
            id=job_id,
            status=JobStatus.queued,
            model=spec.name,
            image=image_name,
            source=source,
            image_sha256=digest,
            created_at=utcnow(),
            request_id=request_id,
            idempotency_key=idempotency_key,
            client_id=client_id,
            callback_url=callback_url,
        )
        return start(
            store,
            publisher,
            job,
            upload,
            pool,
            claim_check_bytes=settings.claim_check_bytes,
            max_queued_per_client=settings.max_queued_per_client,
            before_publish=expect if wait else None,
        )

    try:
        job, created = await queue_confirmed(store, accept)
        headers = {"Location": status_url(job.id)}
        if not created:
            headers["Idempotent-Replayed"] = "true"
        if wait and not job.status.finished:
            job = await _waited(store, parts.waiter, job, wait, expected[0] if expected else None)
    finally:
        for waiting in expected:
            parts.waiter.forget(waiting)
    return JSONResponse(job_view(job), status_code=200 if wait and job.status.finished else 202, headers=headers)


async def _waited(store: JobStore, waiter: JobWaiter, job: Job, wait: float, expected: Waiting | None) -> Job:
    """The job once it finished within ``wait`` seconds; else as it stands then (queued or
    running), or as it was queued if the store cannot say: it is queued either way. ``expected``:
    the wait started before this job's message was published (none for an idempotent replay)."""
    finished = await waiter.wait(job.id, wait, expected=expected)
    if finished is not None:
        return finished
    try:
        return await in_thread(store.get, job.id) or job
    except StoreUnavailable:
        return job


@router.get(
    "",
    summary="List jobs, newest first",
    description="The jobs of the API key that asks (every job when API keys are off), newest first, "
    f"`limit` a page (default {listing.DEFAULT_LIMIT}, at most {listing.MAX_LIMIT}). "
    "`next` is the next page's URL (also in the `Link` header), null on the last page; pages are "
    "stable while new jobs arrive.",
    response_model=JobPage,
    responses={401: ERROR_RESPONSE_SCHEMA, 422: ERROR_RESPONSE_SCHEMA, 503: ERROR_RESPONSE_SCHEMA},
)
async def list_jobs(
    request: Request,
    store: StoreDep,
    client_id: ClientIdDep,
    status: Annotated[
        list[str] | None,
        Query(description="Only jobs in these statuses: repeat it or separate with commas (`failed,canceled`)"),
    ] = None,
    model: Annotated[str | None, Query(max_length=100, description="Only jobs of this model")] = None,
    created_after: Annotated[
        listing.IsoTime | None, Query(description="Only jobs created after this time (ISO 8601; UTC if no zone)")
    ] = None,
    created_before: Annotated[
        listing.IsoTime | None, Query(description="Only jobs created before this time (ISO 8601; UTC if no zone)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=listing.MAX_LIMIT, description="Jobs per page")] = listing.DEFAULT_LIMIT,
    cursor: Annotated[
        str | None, Query(max_length=200, description="Where the page starts: from the previous page's `next`")
    ] = None,
) -> JSONResponse:
    query = JobQuery(
        limit=limit + 1,  # one more than a page: whether a next page exists, without a count
        client_id=client_id or None,
        statuses=listing.parse_statuses(status or []),
        model=model,
        created_after=listing.as_utc(created_after),
        created_before=listing.as_utc(created_before),
        before=None if cursor is None else listing.decode_cursor(cursor),
    )
    jobs = await in_thread(store.list_jobs, query)
    page, more = jobs[:limit], len(jobs) > limit
    next_url = None
    headers = {}
    if more:
        last = page[-1]
        url = request.url.include_query_params(cursor=listing.encode_cursor(last.created_at, last.id))
        next_url = f"{url.path}?{url.query}"
        headers["Link"] = f'<{next_url}>; rel="next"'
    return JSONResponse({"jobs": [job_view(job) for job in page], "next": next_url}, headers=headers)
