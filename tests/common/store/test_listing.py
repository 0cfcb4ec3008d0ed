"""The store contract for listing jobs, counting a client's queued jobs and linking a job to its
retry: every test runs against both adapters (conftest.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from classifier_common.domain import Job, JobError, JobStatus, utcnow
from classifier_common.store import JobQuery, JobStore
from tests.utils.jobs import queued_job
from tests.utils.sqlite_files import schema_v3_file

T0 = utcnow() - timedelta(minutes=10)


def _add(store: JobStore, seconds: float, **fields: object) -> Job:
    return store.create(queued_job(created_at=T0 + timedelta(seconds=seconds), **fields))


def _ids(jobs: list[Job]) -> list[str]:
    return [job.id for job in jobs]


def test_newest_first_with_ties_broken_by_id(store: JobStore) -> None:
    jobs = [_add(store, 1), _add(store, 2), _add(store, 2), _add(store, 3)]
    listed = store.list_jobs(JobQuery(limit=10))
    tied = sorted((jobs[1].id, jobs[2].id), reverse=True)
    assert _ids(listed) == [jobs[3].id, *tied, jobs[0].id]
    assert listed[0] == jobs[3]  # whole jobs, every field


def test_filters_combine(store: JobStore) -> None:
    a = _add(store, 1, model="efficientnet_lite0", client_id="alice")
    b = _add(store, 2, model="efficientnet_lite1", client_id="alice")
    c = _add(store, 3, model="efficientnet_lite0", client_id="bob")
    d = _add(store, 4, model="efficientnet_lite0", client_id="alice")
    store.fail(d.id, JobError(code="x", message="y"), utcnow())

    assert _ids(store.list_jobs(JobQuery(limit=10, client_id="alice"))) == [d.id, b.id, a.id]
    assert _ids(store.list_jobs(JobQuery(limit=10, model="efficientnet_lite0"))) == [d.id, c.id, a.id]
    assert _ids(store.list_jobs(JobQuery(limit=10, statuses=(JobStatus.failed,)))) == [d.id]
    queued_or_failed = (JobStatus.queued, JobStatus.failed)
    assert _ids(store.list_jobs(JobQuery(limit=10, statuses=queued_or_failed, client_id="bob"))) == [c.id]
    assert store.list_jobs(JobQuery(limit=10, statuses=(JobStatus.running,))) == []
    # created_after and created_before are both exclusive.
    window = JobQuery(limit=10, created_after=a.created_at, created_before=d.created_at)
    assert _ids(store.list_jobs(window)) == [c.id, b.id]


def test_cursor_pages_are_stable_under_inserts(store: JobStore) -> None:
    jobs = [_add(store, i // 2) for i in range(7)]  # pairs share a created_at
    expected = _ids(store.list_jobs(JobQuery(limit=100)))
    assert sorted(expected) == sorted(_ids(jobs))

    seen: list[str] = []
    before = None
    while True:
        page = store.list_jobs(JobQuery(limit=3, before=before))
        seen += _ids(page)
        # New jobs arrive between pages: they are newer than every cursor, so never in a later page.
        _add(store, 600 + len(seen))
        if len(page) < 3:
            break
        before = (page[-1].created_at, page[-1].id)
    assert seen == expected


def test_limit_bounds_a_page(store: JobStore) -> None:
    for i in range(5):
        _add(store, i)
    assert len(store.list_jobs(JobQuery(limit=2))) == 2


def test_count_queued_counts_one_clients_queued_jobs(store: JobStore) -> None:
    first = _add(store, 1, client_id="alice")
    _add(store, 2, client_id="alice")
    _add(store, 3, client_id="bob")
    assert store.count_queued("alice") == 2
    store.start(first.id, utcnow())
    assert store.count_queued("alice") == 1
    assert store.count_queued("carol") == 0


@pytest.mark.parametrize("status", ["failed", "canceled"])
def test_a_finished_job_is_claimed_by_one_retry(store: JobStore, status: str) -> None:
    job = _add(store, 1)
    if status == "failed":
        store.fail(job.id, JobError(code="x", message="y"), utcnow())
    else:
        store.cancel(job.id, utcnow())
    assert store.claim_retry(job.id, "a" * 32)
    assert not store.claim_retry(job.id, "b" * 32)
    got = store.get(job.id)
    assert got is not None and got.retried_by == "a" * 32

    store.release_retry(job.id, "b" * 32)  # not the holder: nothing changes
    got = store.get(job.id)
    assert got is not None and got.retried_by == "a" * 32
    store.release_retry(job.id, "a" * 32)
    got = store.get(job.id)
    assert got is not None and got.retried_by is None
    assert store.claim_retry(job.id, "b" * 32)


def test_only_a_failed_or_canceled_job_can_be_claimed(store: JobStore) -> None:
    queued = _add(store, 1)
    assert not store.claim_retry(queued.id, "a" * 32)
    store.start(queued.id, utcnow())
    assert not store.claim_retry(queued.id, "a" * 32)
    assert not store.claim_retry("f" * 32, "a" * 32)  # no such job


def test_a_retry_keeps_its_link(store: JobStore) -> None:
    original = _add(store, 1)
    retry = _add(store, 2, retry_of=original.id)
    got = store.get(retry.id)
    assert got is not None and got.retry_of == original.id and got.retried_by is None


def test_sqlite_v3_file_gains_retry_links_and_listing_indexes(tmp_path) -> None:
    import sqlite3

    from classifier_common.store import sqlite as sqlite_module
    from classifier_common.store.sqlite import SqliteJobStore

    path = schema_v3_file(
        tmp_path / "jobs.db",
        "INSERT INTO jobs (id, status, model, image, source, image_sha256, created_at, client_id) "
        "VALUES ('old', 'failed', 'm', 'i', 'gallery', 'ab', '2026-01-01T00:00:00.000000+00:00', 'c')",
    )
    store = SqliteJobStore(path)
    old = store.get("old")
    assert old is not None and old.retry_of is None and old.retried_by is None
    assert _ids(store.list_jobs(JobQuery(limit=5, client_id="c"))) == ["old"]
    assert store.claim_retry("old", "a" * 32)
    store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (sqlite_module.SCHEMA_VERSION,)
        indexes = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {"jobs_created_at_id", "jobs_client_created_at_id", "jobs_client_status"} <= indexes
        plan = " ".join(
            str(row[-1])
            for row in conn.execute(
                "EXPLAIN QUERY PLAN SELECT id FROM jobs WHERE client_id = 'c' ORDER BY created_at DESC, id DESC LIMIT 5"
            )
        )
        assert "jobs_client_created_at_id" in plan and "TEMP B-TREE" not in plan
