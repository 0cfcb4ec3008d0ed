"""The store's reads behind a queued job's position and the operator view (queued_ahead,
finished_since, unfinished_by_model), against every adapter; and that SQLite answers the
position from its index of queued jobs."""

from __future__ import annotations

import sqlite3
from datetime import timedelta

from classifier_common.domain import JobError, JobStatus, utcnow
from classifier_common.store import JobStore
from classifier_common.store.sqlite import SqliteJobStore
from tests.utils.jobs import GOLDFINCH_RESULT, queued_job
from tests.utils.sqlite_files import schema_v3_file

T0 = utcnow() - timedelta(minutes=10)


def test_queued_ahead_counts_queued_jobs_created_before(store: JobStore) -> None:
    jobs = [store.create(queued_job(created_at=T0 + timedelta(seconds=i))) for i in range(5)]
    assert [store.queued_ahead(job) for job in jobs] == [0, 1, 2, 3, 4]
    # A job a worker took, and one canceled, are ahead of nobody any more.
    store.start(jobs[0].id, utcnow())
    store.cancel(jobs[1].id, utcnow())
    assert store.queued_ahead(jobs[4]) == 2
    # Finished jobs created earlier do not count either.
    store.finish(jobs[0].id, GOLDFINCH_RESULT, utcnow())
    assert store.queued_ahead(jobs[4]) == 2


def test_queued_ahead_breaks_ties_by_id(store: JobStore) -> None:
    """Two jobs created in the same millisecond: exactly one is ahead of the other."""
    first, second = sorted((queued_job(created_at=T0, id=f"{n:032x}") for n in (7, 3)), key=lambda j: j.id)
    store.create(second)
    store.create(first)
    assert (store.queued_ahead(first), store.queued_ahead(second)) == (0, 1)


def test_queued_ahead_of_given_models_only(store: JobStore) -> None:
    store.create(queued_job(created_at=T0, model="efficientnet_lite2"))
    store.create(queued_job(created_at=T0 + timedelta(seconds=1), model="efficientnet_lite1"))
    mine = store.create(queued_job(created_at=T0 + timedelta(seconds=2), model="efficientnet_lite0"))
    assert store.queued_ahead(mine) == 2
    assert store.queued_ahead(mine, ["efficientnet_lite0", "efficientnet_lite1"]) == 1
    assert store.queued_ahead(mine, ["efficientnet_lite0"]) == 0


def test_finished_since_returns_worked_jobs_newest_first(store: JobStore) -> None:
    now = utcnow()
    old = store.create(queued_job(created_at=now - timedelta(minutes=20)))
    store.start(old.id, now - timedelta(minutes=20))
    store.finish(old.id, GOLDFINCH_RESULT, now - timedelta(minutes=19))  # before the window
    made = []
    for i in range(3):
        job = store.create(queued_job(created_at=now - timedelta(seconds=60 - i), model=f"m{i}"))
        store.start(job.id, now - timedelta(seconds=50 - i))
        made.append(job)
    store.finish(made[0].id, GOLDFINCH_RESULT, now - timedelta(seconds=30))
    store.fail(made[1].id, JobError(code="dead_lettered", message="the job will not run"), now - timedelta(seconds=20))
    store.finish(made[2].id, GOLDFINCH_RESULT, now - timedelta(seconds=10))
    canceled = store.create(queued_job(created_at=now - timedelta(seconds=5)))
    store.cancel(canceled.id, now - timedelta(seconds=4))  # no worker did anything: not counted

    window = store.finished_since(now - timedelta(minutes=5))
    assert [f.model for f in window] == ["m2", "m1", "m0"]
    assert [f.status for f in window] == [JobStatus.succeeded, JobStatus.failed, JobStatus.succeeded]
    assert [f.error_code for f in window] == [None, "dead_lettered", None]
    assert window[0].created_at == made[2].created_at
    assert window[0].started_at == now - timedelta(seconds=48)
    assert window[0].finished_at == now - timedelta(seconds=10)
    assert [f.model for f in store.finished_since(now - timedelta(minutes=5), ["m0", "m2"])] == ["m2", "m0"]
    assert [f.model for f in store.finished_since(now - timedelta(minutes=5), limit=1)] == ["m2"]


def test_unfinished_by_model(store: JobStore) -> None:
    assert store.unfinished_by_model() == {}
    a = store.create(queued_job(model="a"))
    store.create(queued_job(model="a"))
    b = store.create(queued_job(model="b"))
    store.start(a.id, utcnow())
    store.start(b.id, utcnow())
    store.finish(b.id, GOLDFINCH_RESULT, utcnow())
    assert store.unfinished_by_model() == {"a": {"queued": 1, "running": 1}}


def test_sqlite_position_reads_the_queued_jobs_index(tmp_path) -> None:
    """The count reads a range of the partial index of queued jobs (the entries before the job's
    own) and never a row of the table."""
    store = SqliteJobStore(tmp_path / "jobs.db")
    job = store.create(queued_job())
    assert store.queued_ahead(job) == 0
    plans = []
    conn = store._conn()
    conn.set_trace_callback(lambda sql: plans.append(sql) if "COUNT(*)" in sql else None)
    store.queued_ahead(job)
    store.queued_ahead(job, ["efficientnet_lite0", "efficientnet_lite1"])
    conn.set_trace_callback(None)
    assert len(plans) == 2
    with sqlite3.connect(tmp_path / "jobs.db") as other:
        for sql in plans:
            plan = " ".join(row[3] for row in other.execute(f"EXPLAIN QUERY PLAN {sql}"))
            assert plan.startswith("SEARCH jobs USING COVERING INDEX jobs_queue_order ((created_at,id)<"), plan
    store.close()


def test_sqlite_window_reads_a_range_of_the_finished_at_index(tmp_path) -> None:
    """Not the status index, which would read every finished job of the retention."""
    store = SqliteJobStore(tmp_path / "jobs.db")
    statements = []
    conn = store._conn()
    conn.set_trace_callback(lambda sql: statements.append(sql) if "finished_at >=" in sql else None)
    store.finished_since(utcnow() - timedelta(minutes=5))
    store.finished_since(utcnow() - timedelta(minutes=5), ["a", "b"])
    conn.set_trace_callback(None)
    with sqlite3.connect(tmp_path / "jobs.db") as other:
        for sql in statements:
            plan = [row[3] for row in other.execute(f"EXPLAIN QUERY PLAN {sql}")]
            assert plan == ["SEARCH jobs USING INDEX jobs_finished_at (finished_at>?)"], plan
    assert len(statements) == 2
    store.close()


def test_sqlite_v3_file_gains_the_queue_index(tmp_path) -> None:
    from classifier_common.store import sqlite as sqlite_module

    path = schema_v3_file(tmp_path / "jobs.db")
    store = SqliteJobStore(path)
    job = store.create(queued_job())
    assert store.queued_ahead(job) == 0
    store.close()
    with sqlite3.connect(path) as conn:
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert "jobs_queue_order" in names
        assert conn.execute("PRAGMA user_version").fetchone() == (sqlite_module.SCHEMA_VERSION,)
