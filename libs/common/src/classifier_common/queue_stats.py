"""Where a queued job stands, and how each pool of workers is doing: computed from the job store
(and, for the operator view, the broker's counts of each queue). No service of its own.

- **Position** (GET /v1/jobs/{id} of a queued job): ``ahead`` is one indexed count of the queued
  jobs created before it for the same pool (:meth:`JobStore.queued_ahead`: it reads as many
  index entries as there are jobs ahead, never a job document). ``estimated_wait_s`` is
  ``(ahead + 1) / busy throughput``: the time until this job is expected to be finished.
- **Busy throughput** of a pool, what a backlog drains at: the jobs its workers finished
  (succeeded or failed) over the last :data:`WINDOW_S` seconds, divided by the time at least one
  of them was running (the union of their started..finished spans). Idle minutes do not count:
  a pool that did 2 jobs/s for 10 s and then waited 4 minutes still drains a new backlog at 2
  jobs/s. Unknown (None) below :data:`MIN_FINISHED` jobs, or when no worker of the pool is
  ready. A position reuses a pool's figure for :data:`THROUGHPUT_TTL_S` seconds, so a page
  polling many queued jobs costs one range read of the finished_at index per pool and per few
  seconds.
- **Jobs/s** of the operator view: the jobs finished in the window over the window, as
  Prometheus' ``rate()`` would say it; beside it the busy throughput, the pool's capacity.
- **Latency**: from ``created_at`` to ``finished_at``, what a client waits; p50 and p95 by the
  nearest-rank method.

Pools: every function here asks :func:`pools` / :func:`pool_for_model` which pool (and queue)
serves a model: the worker pools of the settings (CLASSIFIER_POOLS, docs/pools.md).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import BaseModel, Field

from classifier_common.broker import Publisher, QueueCounts
from classifier_common.catalog import available_models
from classifier_common.config import Settings
from classifier_common.domain import Job, JobStatus, QueuePosition, utcnow
from classifier_common.errors import BrokerUnavailable
from classifier_common.store import FinishedJob, JobStore, WorkerInfo

WINDOW_S = 300  # "the last minutes" of throughput and latency
MIN_WINDOW_S, MAX_WINDOW_S = 60, 3600
MIN_FINISHED = 3  # fewer finished jobs say too little about a rate
THROUGHPUT_TTL_S = 5.0
FINISHED_LIMIT = 10_000  # the newest jobs a window reads at most; jobs/s is then over their span
DEAD_LETTERED = "dead_lettered"  # the error code the reconciler fails a dead-lettered job with


@dataclass(frozen=True)
class Pool:
    name: str
    queue: str
    models: frozenset[str] | None  # None: every model this server has


def pools(settings: Settings) -> list[Pool]:
    """The pools of workers and the queue each consumes; the implicit pool ``default`` without
    a model list serves every model with weights."""
    return [
        Pool(name, settings.queue_for_pool(name), frozenset(settings.pool_models(name)) or None)
        for name in settings.pools
    ]


def pool_for_model(settings: Settings, model: str) -> Pool | None:
    """The pool (and queue) that serves ``model``; None when no pool does."""
    name = settings.pool_for_model(model)
    return next((pool for pool in pools(settings) if pool.name == name), None)


# -- pure computations


def busy_seconds(finished: Sequence[FinishedJob]) -> float:
    """How long at least one of these jobs was running: the union of their spans."""
    spans = sorted((job.started_at or job.finished_at, job.finished_at) for job in finished)
    total = 0.0
    current_start, current_end = None, None
    for start, end in spans:
        if current_end is None or start > current_end:
            if current_start is not None and current_end is not None:
                total += (current_end - current_start).total_seconds()
            current_start, current_end = start, end
        elif end > current_end:
            current_end = end
    if current_start is not None and current_end is not None:
        total += (current_end - current_start).total_seconds()
    return total


def busy_throughput(finished: Sequence[FinishedJob]) -> float | None:
    """Jobs per second while the pool was working; None below MIN_FINISHED jobs."""
    if len(finished) < MIN_FINISHED:
        return None
    # A floor of 1 ms a job: spans that round to nothing (cached answers) do not make it infinite.
    return len(finished) / max(busy_seconds(finished), 0.001 * len(finished))


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile (``fraction`` in (0, 1]); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def estimated_wait(ahead: int, jobs_per_s: float | None) -> float | None:
    """Seconds until a job with ``ahead`` jobs before it is expected to be finished."""
    if not jobs_per_s:
        return None
    return round((ahead + 1) / jobs_per_s, 1)


def serves(pool: Pool, worker: WorkerInfo) -> bool:
    return pool.models is None or not pool.models.isdisjoint(worker.models)


# -- the answers


class BrokerQueue(BaseModel):
    ready: int = Field(description="Messages waiting in the pool's queue for a worker.")
    unacked: int | None = Field(
        description="Messages delivered to workers and not acknowledged yet; null where the broker does not "
        "report it (RabbitMQ over AMQP)."
    )
    consumers: int = Field(description="Consumers of the queue (worker connections).")
    dead_letters: int = Field(description="Messages in the queue's dead-letter queue, not yet reconciled.")


class PoolStats(BaseModel):
    pool: str = Field(description="The pool of workers.")
    queue: str = Field(description="The queue its workers consume.")
    models: list[str] = Field(description="The models it serves.")
    backlog: int = Field(description="Jobs not finished yet (queued + running), from the job store.")
    queued: int = Field(description="Jobs waiting for a worker.")
    running: int = Field(description="Jobs a worker is classifying.")
    broker: BrokerQueue | None = Field(description="The broker's counts; null when the broker cannot be asked.")
    ready_workers: int = Field(description="Workers of the pool that sent a heartbeat lately.")
    finished: int = Field(description="Jobs finished by a worker (succeeded or failed) in the window.")
    failed: int = Field(description="Of those, the failed ones.")
    dead_lettered: int = Field(description="Of the failed, those whose message was dead-lettered.")
    jobs_per_s: float = Field(description="Jobs finished in the window over the window (what Prometheus' rate() says).")
    busy_jobs_per_s: float | None = Field(
        description="Jobs finished per second while at least one was running: what a backlog drains at, and "
        "what a queued job's estimated wait uses. Null with fewer than 3 finished jobs."
    )
    p50_latency_s: float | None = Field(description="Median time from submission to result in the window.")
    p95_latency_s: float | None = Field(description="95th percentile of the same.")


class Stats(BaseModel):
    window_s: int = Field(description="The window of the throughput, latency and counts of finished jobs.")
    generated_at: datetime
    broker_error: str | None = Field(description="Why the broker's counts are missing, when they are.")
    pools: list[PoolStats]


class QueueStats:
    """Positions and pool statistics for one service; thread-safe (the routes call it from
    FastAPI's thread pool)."""

    def __init__(self, settings: Settings, store: JobStore, *, monotonic: Callable[[], float] = time.monotonic):
        self.settings = settings
        self.store = store
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._rates: dict[str, tuple[float, float | None]] = {}  # pool -> (expires, jobs/s or None)

    def _ready_workers(self, pool: Pool, now: datetime) -> int:
        since = now - timedelta(seconds=3 * self.settings.heartbeat_s)
        return sum(1 for worker in self.store.live_workers(since) if serves(pool, worker))

    def _pool_rate(self, pool: Pool, now: datetime) -> float | None:
        with self._lock:
            cached = self._rates.get(pool.name)
        if cached is not None and cached[0] > self._monotonic():
            return cached[1]
        rate = None
        if self._ready_workers(pool, now):
            since = now - timedelta(seconds=WINDOW_S)
            rate = busy_throughput(self.store.finished_since(since, pool.models, FINISHED_LIMIT))
        with self._lock:
            self._rates[pool.name] = (self._monotonic() + THROUGHPUT_TTL_S, rate)
        return rate

    def position(self, job: Job) -> QueuePosition | None:
        """A queued job's place; None for a job that is not queued or that no pool serves."""
        pool = pool_for_model(self.settings, job.model)
        if job.status is not JobStatus.queued or pool is None:
            return None
        ahead = self.store.queued_ahead(job, pool.models)
        return QueuePosition(ahead=ahead, estimated_wait_s=estimated_wait(ahead, self._pool_rate(pool, utcnow())))

    def stats(self, publisher: Publisher | None, window_s: int = WINDOW_S) -> Stats:
        now = utcnow()
        since = now - timedelta(seconds=window_s)
        finished = self.store.finished_since(since, None, FINISHED_LIMIT)
        # Cut at the limit, the jobs read cover only the newest part of the window.
        span_s = window_s if len(finished) < FINISHED_LIMIT else (now - finished[-1].finished_at).total_seconds()
        unfinished = self.store.unfinished_by_model()
        workers = self.store.live_workers(now - timedelta(seconds=3 * self.settings.heartbeat_s))
        installed = sorted(spec.name for spec in available_models(self.settings.models_dir))
        broker_error = None
        answers = []
        for pool in pools(self.settings):
            counts: QueueCounts | None = None
            if publisher is not None and broker_error is None:
                try:
                    counts = publisher.queue_counts(pool.name)
                except BrokerUnavailable as exc:
                    broker_error = exc.message
            models = sorted(pool.models) if pool.models is not None else installed
            mine = [job for job in finished if pool.models is None or job.model in pool.models]
            latencies = [(job.finished_at - job.created_at).total_seconds() for job in mine]
            queued = sum(n.get("queued", 0) for m, n in unfinished.items() if pool.models is None or m in pool.models)
            running = sum(n.get("running", 0) for m, n in unfinished.items() if pool.models is None or m in pool.models)
            capacity = busy_throughput(mine)
            answers.append(
                PoolStats(
                    pool=pool.name,
                    queue=pool.queue,
                    models=models,
                    backlog=queued + running,
                    queued=queued,
                    running=running,
                    broker=None if counts is None else BrokerQueue(**vars(counts)),
                    ready_workers=sum(1 for worker in workers if serves(pool, worker)),
                    finished=len(mine),
                    failed=sum(1 for job in mine if job.status is JobStatus.failed),
                    dead_lettered=sum(1 for job in mine if job.error_code == DEAD_LETTERED),
                    jobs_per_s=round(len(mine) / max(span_s, 1.0), 3),
                    busy_jobs_per_s=None if capacity is None else round(capacity, 3),
                    p50_latency_s=_rounded(percentile(latencies, 0.5)),
                    p95_latency_s=_rounded(percentile(latencies, 0.95)),
                )
            )
        return Stats(window_s=window_s, generated_at=now, broker_error=broker_error, pools=answers)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
