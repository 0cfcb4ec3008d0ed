"""A worker process with several job threads (CLASSIFIER_WORKER_THREADS, the chart's
worker.workerThreads: on a GPU several decode their batches while one runs the model) runs that
many jobs at once from its one RabbitMQ consumer, each to its outcome."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from classifier_common.catalog import SYNTHETIC_MODEL
from tests.utils.stack import running_stack, submit_gallery_jobs

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]

SERVICE_S = 2.0


@pytest.mark.parametrize("threads", [1, 2])
def test_a_worker_runs_as_many_jobs_at_once_as_it_has_threads(
    tmp_path: Path, seeded: tuple[Path, Path], threads: int
) -> None:
    with running_stack(
        tmp_path,
        seeded,
        workers=1,
        CLASSIFIER_MODELS=SYNTHETIC_MODEL,
        CLASSIFIER_SYNTHETIC_SERVICE_MS=str(int(SERVICE_S * 1000)),
        CLASSIFIER_WORKER_THREADS=str(threads),
        CLASSIFIER_MAX_BATCH="1",
        CLASSIFIER_PREFETCH="4",
        CLASSIFIER_RESULT_CACHE="false",
    ) as stack:
        ids, results = submit_gallery_jobs(stack, SYNTHETIC_MODEL, 2)
        jobs = [results.get(f"/v1/jobs/{job_id}", params={"wait": 30}).json() for job_id in ids]
    assert [job["status"] for job in jobs] == ["succeeded", "succeeded"], jobs
    started = sorted(datetime.fromisoformat(job["started_at"]) for job in jobs)
    apart_s = (started[1] - started[0]).total_seconds()
    if threads == 1:  # one after the other: the second starts when the first is done
        assert apart_s >= SERVICE_S * 0.9, jobs
    else:  # side by side
        assert apart_s < SERVICE_S / 2, jobs
