"""GET /v1/jobs/{id} (with optional long-poll), DELETE /v1/jobs/{id} (cancel a queued job) and
POST /v1/jobs/{id}/retry (a new job from a failed or canceled one).

With API keys on, a job is its submitter's: another key gets 404 for it, as for a job that does
not exist (classifier_common.deps.owns)."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse

from classifier_common import metrics
from classifier_common.blocking import in_thread
from classifier_common.deps import ClientIdDep, StoreDep, owns
from classifier_common.domain import Job, JobStatus, JobView, job_view, utcnow
from classifier_common.errors import Conflict, InvalidInput, NotFound
from classifier_common.queue_stats import QueueStats
from classifier_common.store import JobStore
from classifier_common.waiter import MAX_WAIT_S, JobWaiter
from classifier_common.web import ERROR_RESPONSE_SCHEMA

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

JOB_ID = re.compile(r"^[0-9a-f]{32}$")


# Checked by valid_id (422 invalid_input, counted in the lookup metric); the pattern is declared
# in the OpenAPI schema so that the documentation says what the service accepts.
def job_id_path() -> Any:
    return Path(max_length=100, json_schema_extra={"pattern": JOB_ID.pattern})


def valid_id(job_id: str) -> str:
    if not JOB_ID.fullmatch(job_id):
        metrics.JOB_LOOKUPS.labels("invalid").inc()
        raise InvalidInput("a job id is 32 lowercase hex characters", {"job_id": job_id[:100]})
    return job_id


def _waiter(request: Request) -> JobWaiter:
    """The app's one long-poll waiter (classifier_results.main.Results puts it there)."""
    return request.app.state.job_waiter


def _queue_stats(request: Request) -> QueueStats:
    """The app's positions and pool statistics (classifier_results.main.Results puts it there)."""
    return request.app.state.queue_stats


async def _view(request: Request, job: Job) -> dict[str, Any]:
    """The job's document; a queued job's with its place in the queue."""
    body = job_view(job)
    if job.status is JobStatus.queued:
        position = await in_thread(_queue_stats(request).position, job)
        if position is not None:
            body["queue"] = position.model_dump()
    return body


async def owned_job(store: JobStore, job_id: str, client_id: str) -> Job:
    """The job, if it exists and the client may see it; else NotFound (404)."""
    job = await in_thread(store.get, job_id)
    if job is None or not owns(client_id, job):
        raise NotFound(f"no job with id {job_id}")
    return job


async def _get(store: JobStore, job_id: str, client_id: str) -> Job:
    try:
        return await owned_job(store, job_id, client_id)
    except NotFound:
        metrics.JOB_LOOKUPS.labels("not_found").inc()
        raise


@router.get(
    "/{job_id}",
    summary="A job: its status, and its predictions once it succeeded",
    response_model=JobView,
    responses={404: ERROR_RESPONSE_SCHEMA, 422: ERROR_RESPONSE_SCHEMA, 503: ERROR_RESPONSE_SCHEMA},
)
async def get_job(
    request: Request,
    store: StoreDep,
    client_id: ClientIdDep,
    job_id: str = job_id_path(),
    wait: float = Query(
        0, ge=0, le=MAX_WAIT_S, description="Long-poll: wait up to this many seconds for the job to finish"
    ),
) -> JSONResponse:
    job = await _get(store, valid_id(job_id), client_id)
    if wait and not job.status.finished:
        finished = await _waiter(request).wait(job_id, wait)
        job = finished if finished is not None else await _get(store, job_id, client_id)
    metrics.JOB_LOOKUPS.labels("found").inc()
    return JSONResponse(await _view(request, job))


@router.delete(
    "/{job_id}",
    summary="Cancel a queued job (a worker then skips it)",
    response_model=JobView,
    responses={404: ERROR_RESPONSE_SCHEMA, 409: ERROR_RESPONSE_SCHEMA, 422: ERROR_RESPONSE_SCHEMA},
)
async def cancel_job(
    request: Request, store: StoreDep, client_id: ClientIdDep, job_id: str = job_id_path()
) -> JSONResponse:
    await owned_job(store, valid_id(job_id), client_id)  # another key's job is not there to cancel
    job = await in_thread(store.cancel, job_id, utcnow())
    if job is None:
        raise NotFound(f"no job with id {job_id}")
    if job.status is not JobStatus.canceled:
        raise Conflict(
            f"the job is {job.status.value}; only a queued job can be canceled", {"status": job.status.value}
        )
    _waiter(request).finished(job)  # requests waiting on it here answer now
    return JSONResponse(job_view(job))
