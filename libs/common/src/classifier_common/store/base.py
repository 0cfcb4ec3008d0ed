"""The job store: one interface, two adapters (SQLite embedded, MongoDB in production).

Every write that moves a job through its lifecycle is a single conditional update, so that a
redelivered message, two workers racing, or a retry after a crash all leave exactly one outcome.
Adapters raise :class:`classifier_common.errors.StoreUnavailable` when the database cannot be
reached; every other exception is a bug.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from classifier_common.domain import Batch, Job, JobError, JobResult, JobStatus

CallbackOutcome = Literal["delivered", "failed", "retry"]


@dataclass(frozen=True)
class CacheKey:
    """A classification is fully determined by these three."""

    model: str
    model_version: str
    image_sha256: str


@dataclass(frozen=True)
class WorkerInfo:
    worker_id: str
    models: tuple[str, ...]
    last_seen: datetime


@dataclass(frozen=True)
class FinishedJob:
    """A job a worker finished (succeeded or failed), with its timings: what throughput and
    latency are computed from (classifier_common.queue_stats)."""

    model: str
    status: JobStatus
    error_code: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime


@dataclass(frozen=True)
class JobQuery:
    """Which jobs :meth:`JobStore.list_jobs` returns, newest first (``created_at``, then ``id``,
    both descending). Each filter left as None matches every job.

    ``before`` is the keyset cursor: the (created_at, id) of the last job of the previous page;
    only jobs strictly after it in that order come. A job inserted meanwhile is newer than every
    cursor, so pages never repeat or skip a job.
    """

    limit: int
    client_id: str | None = None
    statuses: tuple[JobStatus, ...] | None = None
    model: str | None = None
    created_after: datetime | None = None  # exclusive
    created_before: datetime | None = None  # exclusive
    before: tuple[datetime, str] | None = None


class JobStore(Protocol):
    def ping(self) -> None:
        """Raise StoreUnavailable unless the database answers."""

    def create(self, job: Job) -> Job:
        """Insert a new job (status queued).

        If ``job.idempotency_key`` is set and a job of the same ``client_id`` with that key
        exists, nothing is written and the existing job is returned; otherwise the inserted job
        is returned. Keys of different clients never meet.
        """

    def get(self, job_id: str) -> Job | None: ...

    def list_jobs(self, query: JobQuery) -> list[Job]:
        """At most ``query.limit`` jobs matching ``query``, newest first (see :class:`JobQuery`)."""

    def count_queued(self, client_id: str) -> int:
        """How many jobs of this client are queued (its bound on waiting jobs counts these)."""

    def claim_retry(self, job_id: str, retry_id: str) -> bool:
        """Name ``retry_id`` as the retry of ``job_id`` if that job is failed or canceled and has
        no retry yet: one conditional write, so of two racing retries exactly one claims it."""

    def release_retry(self, job_id: str, retry_id: str) -> None:
        """Undo :meth:`claim_retry` (the retry was never queued), if ``retry_id`` still holds it."""

    def finished_among(self, job_ids: list[str]) -> set[str]:
        """The ids among ``job_ids`` whose job is finished or does not exist (any more): one
        query for every long-poll waiting in a results process."""

    def change_counter(self) -> int | None:
        """A number that differs from the last one this thread got whenever another connection
        has committed a change since, so a poller can skip reading while nothing changed; None
        when the store cannot tell cheaply (then the poller reads every tick)."""

    def delete(self, job_id: str) -> None:
        """Remove a job and its stored upload: only used to roll back a job whose publish failed
        (never got a 202)."""

    def start(self, job_id: str, now: datetime) -> Job | None:
        """A worker takes the job: if queued or running, set running, started_at=now and
        attempts+=1 and return the updated job. A finished job is returned unchanged (the
        caller skips it). None if there is no such job."""

    def finish(self, job_id: str, result: JobResult, now: datetime) -> bool:
        """Set succeeded with the result unless the job is already finished. True if this call
        wrote the outcome."""

    def fail(self, job_id: str, error: JobError, now: datetime) -> bool:
        """Set failed with the error unless the job is already finished. True if this call wrote."""

    def cancel(self, job_id: str, now: datetime) -> Job | None:
        """Set canceled if the job is queued. Returns the job as it is after the call (its status
        says whether the cancel took), or None if there is no such job."""

    def unfinished(self, limit: int = 10_000) -> list[Job]:
        """Queued and running jobs, oldest first (embedded mode re-queues them at start)."""

    def count_by_status(self) -> dict[str, int]:
        """Number of jobs in each status (all statuses present, zeros included)."""

    def queued_ahead(self, job: Job, models: Collection[str] | None = None) -> int:
        """Queued jobs created before ``job`` (ties broken by id), of ``models`` only when given:
        its place in the queue. One count over an index of the queued jobs; its cost grows with
        the number of jobs queued before this one, never with the finished ones."""

    def finished_since(
        self, since: datetime, models: Collection[str] | None = None, limit: int = 10_000
    ) -> list[FinishedJob]:
        """Succeeded and failed jobs whose finished_at is at or after ``since`` (of ``models``
        only when given), newest first, at most ``limit``: a range of the finished_at index."""

    def unfinished_by_model(self) -> dict[str, dict[str, int]]:
        """For each model with queued or running jobs, how many of each: {model: {"queued": n,
        "running": m}} (both keys present). One grouped count over the status index."""

    def purge_finished(self, older_than: datetime) -> int:
        """Delete finished jobs whose finished_at is before ``older_than``; return how many. The
        stored uploads of the jobs deleted, and of any job no longer in the store, go too."""

    # -- stored uploads (the claim check: classifier_gateway.submission) -------------------------
    # An upload above CLASSIFIER_CLAIM_CHECK_BYTES travels to the worker through the store, not in
    # the queue message. It is keyed by the job's id and lives as long as its job: deleted with it
    # by ``delete`` and ``purge_finished``, never when the job finishes.

    def put_upload(self, job_id: str, data: bytes) -> None:
        """Keep ``data`` as the job's upload. Putting it again for the same job keeps one copy
        (the first: a job's upload never changes)."""

    def get_upload(self, job_id: str) -> bytes | None:
        """The job's upload, or None if none is stored (any more)."""

    def delete_upload(self, job_id: str) -> None:
        """Remove the job's upload, if any."""

    # -- callbacks (classifier_common.callbacks) ------------------------------------------------
    # A job submitted with a callback_url has its callback pending until a notifier records it
    # delivered or given up. Each delivery attempt is claimed with one conditional update, so of
    # several notifiers (results replicas) exactly one makes it.

    def callbacks_due(self, now: datetime, limit: int = 100) -> list[Job]:
        """Finished jobs whose callback is pending, its next attempt due (``next_at`` reached)
        and no notifier holding it (its lease expired), oldest finished first."""

    def claim_callback(self, job_id: str, now: datetime, lease_until: datetime) -> int | None:
        """Take the job's callback for one attempt until ``lease_until``, if it is still due and
        unclaimed: counts the attempt and returns its number (1 for the first), else None."""

    def settle_callback(
        self, job_id: str, outcome: CallbackOutcome, *, next_at: datetime | None = None, error: str | None = None
    ) -> None:
        """Record the claimed attempt's outcome and release the claim: ``delivered`` and
        ``failed`` (given up) are final; ``retry`` makes the callback due again at ``next_at``."""

    # -- batches (POST /v1/batches) ---------------------------------------------------------------

    def create_batch(self, batch: Batch) -> Batch:
        """Insert a batch record. As :meth:`create`: if ``batch.idempotency_key`` is set and a
        batch of the same ``client_id`` with that key exists, nothing is written and the existing
        batch is returned; a batch with the same id returns that one too (its id is derived from
        the key, so a retried request names the same batch)."""

    def get_batch(self, batch_id: str) -> Batch | None: ...

    def get_many(self, job_ids: list[str]) -> list[Job]:
        """The jobs among ``job_ids`` that exist, in no particular order: one query for a batch."""

    def cache_get(self, key: CacheKey) -> JobResult | None: ...

    def cache_put(self, key: CacheKey, result: JobResult) -> None: ...

    def heartbeat(self, worker_id: str, models: list[str], now: datetime) -> None:
        """A worker says it is alive and which models it has loaded."""

    def live_workers(self, since: datetime) -> list[WorkerInfo]: ...

    def close(self) -> None: ...
