"""The job store contract, continued: ``finished_among``, the one query the results service's
long-poll makes for all the jobs its requests wait on (every adapter, see conftest.py)."""

from __future__ import annotations

from classifier_common.domain import JobError, new_job_id, utcnow
from classifier_common.store.base import JobStore
from tests.utils.jobs import GOLDFINCH_RESULT, queued_job


def test_finished_among_names_finished_and_missing_jobs(store: JobStore) -> None:
    queued, running, succeeded, failed, canceled = (store.create(queued_job()) for _ in range(5))
    store.start(running.id, utcnow())
    store.start(succeeded.id, utcnow())
    store.finish(succeeded.id, GOLDFINCH_RESULT, utcnow())
    store.fail(failed.id, JobError(code="x", message="y"), utcnow())
    store.cancel(canceled.id, utcnow())
    missing = new_job_id()
    ids = [queued.id, running.id, succeeded.id, failed.id, canceled.id, missing]
    assert store.finished_among(ids) == {succeeded.id, failed.id, canceled.id, missing}
    assert store.finished_among([]) == set()


def test_finished_among_handles_more_ids_than_one_query_takes(store: JobStore) -> None:
    jobs = [store.create(queued_job()) for _ in range(3)]
    store.finish(jobs[1].id, GOLDFINCH_RESULT, utcnow())
    unknown = [new_job_id() for _ in range(1200)]
    ids = unknown[:600] + [j.id for j in jobs] + unknown[600:]
    assert store.finished_among(ids) == {jobs[1].id, *unknown}
