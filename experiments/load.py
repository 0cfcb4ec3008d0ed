"""Drive a load profile against the API: POST /v1/jobs at the profile's times, then collect every
accepted job's outcome from its Location (GET /v1/jobs/{id}).

Submissions are sent at their scheduled instants, each in its own task, so a slow answer never
delays the next one (an open-loop load, as real clients are). Outcomes are collected after the
load, not during it: following hundreds of jobs with long-polls while they run would add load
the experiment is not about. Times in jobs.csv are seconds since the run's start: ``submitted_s``
when the POST was sent (the client's clock), ``finished_s`` from the job's ``finished_at`` (the
server's clock; the same machine locally, NTP-synchronised on a cluster).
"""

from __future__ import annotations

import asyncio
import csv
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

from experiments.profiles import LoadProfile
from experiments.report import DEFAULT_POOL, JOB_COLUMNS, TERMINAL, JobRecord

logger = logging.getLogger(__name__)

# Long-polls in flight at once while collecting outcomes.
COLLECT_CONCURRENCY = 16


@dataclass(frozen=True)
class Submission:
    submitted_s: float
    http_status: int  # 0: no answer (connection error or timeout)
    job_id: str = ""
    location: str = ""


async def submit_profile(
    base_url: str,
    profile: LoadProfile,
    *,
    model: str,
    images: Sequence[str],
    start: float,
    headers: dict[str, str] | None = None,
) -> list[Submission]:
    """POST one job per scheduled instant of ``profile``, ``start`` being time.monotonic() at
    t = 0; image k is ``images[k % len(images)]``."""
    if not images:
        raise ValueError("no images to submit")
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=32)
    async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits, headers=headers) as client:
        tasks = []
        for k, at in enumerate(profile.submission_times()):
            delay = start + at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            body = {"model": model, "image": images[k % len(images)]}
            tasks.append(asyncio.create_task(_submit(client, body, start)))
        return list(await asyncio.gather(*tasks))


async def _submit(client: httpx.AsyncClient, body: dict[str, str], start: float) -> Submission:
    sent = time.monotonic() - start
    try:
        response = await client.post("/v1/jobs", json=body)
    except httpx.HTTPError as exc:
        logger.warning("submission failed: %s", exc)
        return Submission(sent, 0)
    if response.status_code != 202:
        return Submission(sent, response.status_code)
    return Submission(sent, 202, response.json()["id"], response.headers["location"])


async def collect_outcomes(
    base_url: str,
    submissions: Sequence[Submission],
    *,
    wall_start: float,
    timeout_s: float,
    headers: dict[str, str] | None = None,
    pool: str = DEFAULT_POOL,
) -> list[JobRecord]:
    """Every submission's record (of ``pool``); accepted jobs are followed (long-poll) until they
    are finished or ``timeout_s`` has passed. ``wall_start`` is time.time() at t = 0."""
    deadline = time.monotonic() + timeout_s
    semaphore = asyncio.Semaphore(COLLECT_CONCURRENCY)
    async with httpx.AsyncClient(base_url=base_url, timeout=40, headers=headers) as client:

        async def follow(submission: Submission) -> JobRecord:
            if submission.http_status != 202:
                return JobRecord("", submission.submitted_s, submission.http_status, None, "rejected", pool)
            async with semaphore:
                status, finished = await _follow(client, submission.location, deadline, wall_start)
            return JobRecord(submission.job_id, submission.submitted_s, 202, finished, status, pool)

        return list(await asyncio.gather(*(follow(s) for s in submissions)))


async def _follow(
    client: httpx.AsyncClient, location: str, deadline: float, wall_start: float
) -> tuple[str, float | None]:
    status = "unknown"
    while True:
        remaining = deadline - time.monotonic()
        wait = max(0, min(30, int(remaining)))
        try:
            response = await client.get(location, params={"wait": wait})
        except httpx.HTTPError as exc:
            logger.warning("GET %s failed: %s", location, exc)
            response = None
        if response is not None and response.status_code == 404:
            return "missing", None
        if response is not None and response.status_code == 200:
            job = response.json()
            status = job["status"]
            if status in TERMINAL or status == "canceled":
                finished = job.get("finished_at")
                return status, None if finished is None else _parse_time(finished) - wall_start
        if time.monotonic() >= deadline:
            return status, None
        if response is None or response.status_code != 200:
            await asyncio.sleep(1)


def _parse_time(value: str) -> float:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def write_jobs_csv(path: Path, records: Sequence[JobRecord]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(JOB_COLUMNS)
        for r in records:
            finished = "" if r.finished_s is None else f"{r.finished_s:.3f}"
            writer.writerow([r.job_id, f"{r.submitted_s:.3f}", r.http_status, finished, r.status, r.pool])
