"""GET /v1/stats: the operator's view of each pool of workers (backlog, consumers, ready workers,
throughput, latency, dead-lettered jobs), from the job store and the broker's queue counts."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request

from classifier_common.blocking import in_thread
from classifier_common.queue_stats import MAX_WINDOW_S, MIN_WINDOW_S, WINDOW_S, QueueStats, Stats
from classifier_common.web import ERROR_RESPONSE_SCHEMA
from classifier_gateway.api.deps import ClientIdDep, PublisherDep

router = APIRouter(prefix="/v1/stats", tags=["stats"])


@router.get(
    "",
    summary="Each pool of workers: backlog, consumers, ready workers, jobs/s, p95 latency, dead-lettered jobs",
    response_model=Stats,
    responses={
        401: ERROR_RESPONSE_SCHEMA,
        422: ERROR_RESPONSE_SCHEMA,
        503: ERROR_RESPONSE_SCHEMA,
    },
)
async def stats(
    request: Request,
    publisher: PublisherDep,
    _client: ClientIdDep,
    window_s: int = Query(
        WINDOW_S,
        ge=MIN_WINDOW_S,
        le=MAX_WINDOW_S,
        description="The window, in seconds, of the throughput, the latencies and the counts of finished jobs",
    ),
) -> Stats:
    queue_stats: QueueStats = request.app.state.queue_stats
    return await in_thread(queue_stats.stats, publisher, window_s)
