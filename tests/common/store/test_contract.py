"""The job store contract: every test runs against every adapter (see conftest.py for which
Mongo backend runs), then the ways each adapter must report an unusable database."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from classifier_common.domain import (
    Job,
    JobError,
    JobResult,
    JobStatus,
    Prediction,
    new_job_id,
    utcnow,
)
from classifier_common.errors import StoreUnavailable
from classifier_common.store import CacheKey, JobStore
from classifier_common.store.mongo import MongoJobStore
from classifier_common.store.sqlite import SqliteJobStore
from tests.utils.jobs import queued_job

from .conftest import MONGO, MONGOMOCK, THREAD_SAFE_BACKENDS

# Recent: a real MongoDB (and mongomock) expires finished jobs older than the retention.
T0 = utcnow() - timedelta(minutes=10)


def make_job(**fields: object) -> Job:
    return queued_job(**fields)


def make_result(version: str = "v1", score: float = 0.9137) -> JobResult:
    return JobResult(
        predictions=[
            Prediction(label="goldfinch", class_index=11, score=score),
            Prediction(label="house finch", class_index=12, score=round(1 - score, 6)),
        ],
        model_version=version,
        inference_ms=12.345,
    )


def _at_once(threads: int, call: Callable[[int], object]) -> list[Exception]:
    """``call(0)`` ... ``call(threads - 1)``, each on its own thread, released together; what they
    raised (reported from the test's own thread)."""
    start = threading.Barrier(threads)
    errors: list[Exception] = []

    def run(i: int) -> None:
        start.wait()
        try:
            call(i)
        except Exception as exc:  # noqa: BLE001 - returned to the test
            errors.append(exc)

    racers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join()
    return errors


# -- create / get / delete ----------------------------------------------------------------------


def test_create_get_round_trip_keeps_every_field(store: JobStore) -> None:
    job = make_job(
        status=JobStatus.failed,
        source="upload",
        image="my cat.png",
        created_at=T0,
        started_at=T0 + timedelta(seconds=1),
        finished_at=T0 + timedelta(seconds=2, milliseconds=345),
        attempts=2,
        result=make_result(),
        error=JobError(code="model_missing", message="no weights for efficientnet_lite0"),
        request_id="req-42",
        idempotency_key="key-42",
        client_id="client-a",
        callback_url="https://example.test/hook",
        batch_id="0c5f1e2d3b4a49588776655443322110",
        retry_of="c" * 32,
        retried_by="d" * 32,
    )
    # A field added to Job must be stored by both adapters: this sample must then set it.
    unset = [name for name in Job.model_fields if getattr(job, name) is None]
    assert unset == [], f"give the sample job a value for {unset}"

    assert store.create(job) == job
    stored = store.get(job.id)
    assert stored == job
    for name in ("created_at", "started_at", "finished_at"):
        assert getattr(stored, name).utcoffset() == timedelta(0), name


def test_round_trip_of_utcnow_timestamps(store: JobStore) -> None:
    job = make_job()  # created_at=utcnow(): millisecond precision, what both stores keep
    store.create(job)
    assert store.get(job.id) == job


def test_get_unknown_is_none(store: JobStore) -> None:
    assert store.get("does-not-exist") is None


def test_idempotency_key_returns_the_existing_job_and_writes_nothing(
    store: JobStore,
) -> None:
    first = store.create(make_job(idempotency_key="same-request"))
    again = make_job(idempotency_key="same-request", model="resnet18")

    assert store.create(again) == first
    assert store.get(again.id) is None
    assert sum(store.count_by_status().values()) == 1


def test_idempotency_keys_are_per_client(store: JobStore) -> None:
    """One client's key never finds another client's job; "" (API keys off) is a client too."""
    a = store.create(make_job(idempotency_key="shared", client_id="client-a"))
    b = store.create(make_job(idempotency_key="shared", client_id="client-b"))
    anonymous = store.create(make_job(idempotency_key="shared"))
    assert len({a.id, b.id, anonymous.id}) == 3
    assert [store.get(job.id) for job in (a, b, anonymous)] == [a, b, anonymous]
    assert store.create(make_job(idempotency_key="shared", client_id="client-b")) == b
    assert store.create(make_job(idempotency_key="shared")) == anonymous
    assert sum(store.count_by_status().values()) == 3


def test_jobs_without_idempotency_key_never_collide(store: JobStore) -> None:
    jobs = [store.create(make_job()) for _ in range(3)]
    assert [store.get(job.id) for job in jobs] == jobs


def test_delete(store: JobStore) -> None:
    job = store.create(make_job(idempotency_key="rolled-back"))
    store.delete(job.id)
    assert store.get(job.id) is None
    store.delete(job.id)  # already gone: nothing to do
    # The key is free again: a retried request after a rolled-back publish gets a new job.
    retry = make_job(idempotency_key="rolled-back")
    assert store.create(retry) == retry


# -- lifecycle ----------------------------------------------------------------------------------


def test_start_sets_running_and_counts_attempts(store: JobStore) -> None:
    job = store.create(make_job(created_at=T0))
    first = store.start(job.id, T0 + timedelta(seconds=1))
    assert first is not None
    assert (first.status, first.attempts, first.started_at) == (
        JobStatus.running,
        1,
        T0 + timedelta(seconds=1),
    )
    assert store.get(job.id) == first

    # A redelivery after a crash: the job is taken again and the attempt counted.
    second = store.start(job.id, T0 + timedelta(seconds=5))
    assert second is not None
    assert (second.status, second.attempts, second.started_at) == (
        JobStatus.running,
        2,
        T0 + timedelta(seconds=5),
    )
    assert store.get(job.id) == second


def test_start_unknown_is_none(store: JobStore) -> None:
    assert store.start("does-not-exist", utcnow()) is None


def test_start_on_a_finished_job_returns_it_unchanged(store: JobStore) -> None:
    job = store.create(make_job(created_at=T0))
    store.start(job.id, T0 + timedelta(seconds=1))
    assert store.finish(job.id, make_result(), T0 + timedelta(seconds=2))
    finished = store.get(job.id)

    redelivered = store.start(job.id, T0 + timedelta(seconds=3))
    assert redelivered == finished
    assert redelivered.status is JobStatus.succeeded and redelivered.attempts == 1
    assert store.get(job.id) == finished


def test_finish_stores_the_result(store: JobStore) -> None:
    job = store.create(make_job(created_at=T0))
    store.start(job.id, T0 + timedelta(seconds=1))
    result = make_result()
    assert store.finish(job.id, result, T0 + timedelta(seconds=2)) is True

    done = store.get(job.id)
    assert done.status is JobStatus.succeeded
    assert done.result == result
    assert done.finished_at == T0 + timedelta(seconds=2)
    assert done.error is None
    assert store.finish(job.id, make_result("v2"), T0 + timedelta(seconds=3)) is False
    assert store.get(job.id) == done


def test_finish_unknown_is_false(store: JobStore) -> None:
    assert store.finish("does-not-exist", make_result(), utcnow()) is False
    assert store.fail("does-not-exist", JobError(code="x", message="y"), utcnow()) is False


def test_fail_stores_the_error(store: JobStore) -> None:
    job = store.create(make_job(created_at=T0))
    store.start(job.id, T0 + timedelta(seconds=1))
    error = JobError(code="invalid_image", message="truncated JPEG")
    assert store.fail(job.id, error, T0 + timedelta(seconds=2)) is True

    failed = store.get(job.id)
    assert (failed.status, failed.error, failed.result) == (
        JobStatus.failed,
        error,
        None,
    )
    assert failed.finished_at == T0 + timedelta(seconds=2)
    assert store.finish(job.id, make_result(), T0 + timedelta(seconds=3)) is False
    assert store.get(job.id) == failed


def test_fail_after_succeeded_does_nothing(store: JobStore) -> None:
    job = store.create(make_job())
    store.start(job.id, utcnow())
    assert store.finish(job.id, make_result(), utcnow())
    succeeded = store.get(job.id)

    assert store.fail(job.id, JobError(code="late", message="too late"), utcnow()) is False
    assert store.get(job.id) == succeeded


@pytest.mark.parametrize("mix", ["finish", "finish-or-fail"])
def test_finish_exactly_once_under_a_race(store: JobStore, store_kind: str, mix: str) -> None:
    """Redelivered copies of one job finishing at once: exactly one outcome is written."""
    job = store.create(make_job())
    store.start(job.id, utcnow())
    racers = 8
    results: list[bool | None] = [None] * racers

    def fails(i: int) -> bool:
        return mix == "finish-or-fail" and i % 2 == 1

    def finish_or_fail(i: int) -> None:
        if fails(i):
            results[i] = store.fail(job.id, JobError(code=f"e{i}", message="boom"), utcnow())
        else:
            results[i] = store.finish(job.id, make_result(f"v{i}"), utcnow())

    if store_kind == MONGOMOCK:
        # mongomock has no locking, so threads would race mongomock itself; the one-outcome
        # rule of the conditional update is still checked, one call after another.
        for i in range(racers):
            finish_or_fail(i)
    else:
        assert _at_once(racers, finish_or_fail) == []

    assert results.count(True) == 1, results
    (winner,) = [i for i, wrote in enumerate(results) if wrote]
    final = store.get(job.id)
    if fails(winner):
        assert (final.status, final.error.code, final.result) == (
            JobStatus.failed,
            f"e{winner}",
            None,
        )
    else:
        assert (final.status, final.result.model_version, final.error) == (
            JobStatus.succeeded,
            f"v{winner}",
            None,
        )


# -- cancel -------------------------------------------------------------------------------------


def test_cancel_a_queued_job(store: JobStore) -> None:
    job = store.create(make_job(created_at=T0))
    canceled = store.cancel(job.id, T0 + timedelta(seconds=1))
    assert canceled is not None
    assert (canceled.status, canceled.finished_at) == (
        JobStatus.canceled,
        T0 + timedelta(seconds=1),
    )
    assert store.get(job.id) == canceled

    # The worker that later receives the message skips it, and nothing can finish it.
    assert store.start(job.id, T0 + timedelta(seconds=2)) == canceled
    assert store.finish(job.id, make_result(), T0 + timedelta(seconds=3)) is False
    assert store.fail(job.id, JobError(code="x", message="y"), T0 + timedelta(seconds=3)) is False
    assert store.get(job.id) == canceled


def test_cancel_a_running_job_does_not_take(store: JobStore) -> None:
    job = store.create(make_job())
    running = store.start(job.id, utcnow())
    assert store.cancel(job.id, utcnow()) == running
    assert store.get(job.id) == running


def test_cancel_a_finished_job_does_not_take(store: JobStore) -> None:
    job = store.create(make_job())
    store.finish(job.id, make_result(), utcnow())
    succeeded = store.get(job.id)
    assert store.cancel(job.id, utcnow()) == succeeded


def test_cancel_unknown_is_none(store: JobStore) -> None:
    assert store.cancel("does-not-exist", utcnow()) is None


# -- listing, counting, retention ---------------------------------------------------------------


def test_unfinished_oldest_first(store: JobStore) -> None:
    # Inserted out of order, so the order returned must come from created_at.
    late = store.create(make_job(created_at=T0 + timedelta(seconds=3)))
    early = store.create(make_job(created_at=T0 + timedelta(seconds=1)))
    middle = store.create(make_job(created_at=T0 + timedelta(seconds=2)))
    oldest_done = store.create(make_job(created_at=T0))
    store.finish(oldest_done.id, make_result(), T0 + timedelta(seconds=4))
    oldest_canceled = store.create(make_job(created_at=T0 - timedelta(seconds=1)))
    store.cancel(oldest_canceled.id, T0 + timedelta(seconds=4))
    running = store.start(middle.id, T0 + timedelta(seconds=5))

    assert store.unfinished() == [early, running, late]
    assert store.unfinished(limit=2) == [early, running]


def test_count_by_status_includes_zeros(store: JobStore) -> None:
    assert store.count_by_status() == {status.value: 0 for status in JobStatus}

    jobs = [store.create(make_job()) for _ in range(6)]
    store.start(jobs[0].id, utcnow())
    store.start(jobs[1].id, utcnow())
    store.finish(jobs[1].id, make_result(), utcnow())
    store.fail(jobs[2].id, JobError(code="x", message="y"), utcnow())
    store.cancel(jobs[3].id, utcnow())

    assert store.count_by_status() == {
        "queued": 2,
        "running": 1,
        "succeeded": 1,
        "failed": 1,
        "canceled": 1,
    }


def test_purge_finished_removes_only_finished_jobs_older_than_the_cutoff(
    store: JobStore,
) -> None:
    # Relative to now, within a real MongoDB's TTL retention, so only purge_finished deletes.
    now = utcnow()
    cutoff = now - timedelta(hours=1)
    old = now - timedelta(hours=2)
    recent = now - timedelta(minutes=30)

    def job_finished_at(finished_at: datetime, how: str) -> Job:
        job = store.create(make_job(created_at=old - timedelta(hours=1)))
        if how == "succeeded":
            store.finish(job.id, make_result(), finished_at)
        elif how == "failed":
            store.fail(job.id, JobError(code="x", message="y"), finished_at)
        else:
            store.cancel(job.id, finished_at)
        return job

    purged = [job_finished_at(old, how) for how in ("succeeded", "failed", "canceled")]
    kept_finished = [job_finished_at(recent, how) for how in ("succeeded", "failed", "canceled")]
    old_queued = store.create(make_job(created_at=old))
    old_running = store.create(make_job(created_at=old))
    store.start(old_running.id, old)

    assert store.purge_finished(cutoff) == 3
    assert [store.get(job.id) for job in purged] == [None, None, None]
    for job in [*kept_finished, old_queued, old_running]:
        assert store.get(job.id) is not None
    assert store.purge_finished(cutoff) == 0


# -- result cache and worker heartbeats ---------------------------------------------------------


def test_result_cache(store: JobStore) -> None:
    key = CacheKey(model="efficientnet_lite0", model_version="sha256:1234", image_sha256="cd" * 32)
    assert store.cache_get(key) is None

    result = make_result("sha256:1234")
    store.cache_put(key, result)
    assert store.cache_get(key) == result

    store.cache_put(key, result)  # two workers caching the same classification
    assert store.cache_get(key) == result
    newer = make_result("sha256:1234", score=0.5)
    store.cache_put(key, newer)
    assert store.cache_get(key) == newer

    for other in (
        CacheKey(model="resnet18", model_version="sha256:1234", image_sha256="cd" * 32),
        CacheKey(
            model="efficientnet_lite0",
            model_version="sha256:5678",
            image_sha256="cd" * 32,
        ),
        CacheKey(
            model="efficientnet_lite0",
            model_version="sha256:1234",
            image_sha256="ef" * 32,
        ),
    ):
        assert store.cache_get(other) is None


def test_heartbeat_and_live_workers(store: JobStore) -> None:
    now = utcnow()
    store.heartbeat("worker-a", ["efficientnet_lite0"], now - timedelta(seconds=60))
    store.heartbeat("worker-b", ["resnet18", "vgg16"], now)

    live = store.live_workers(since=now - timedelta(seconds=30))
    assert [(w.worker_id, w.models, w.last_seen) for w in live] == [("worker-b", ("resnet18", "vgg16"), now)]

    # An upsert: the same worker again, with what it has loaded now.
    store.heartbeat("worker-a", ["efficientnet_lite0", "resnet50"], now)
    live = store.live_workers(since=now - timedelta(seconds=30))
    assert [(w.worker_id, w.models, w.last_seen) for w in live] == [
        ("worker-a", ("efficientnet_lite0", "resnet50"), now),
        ("worker-b", ("resnet18", "vgg16"), now),
    ]
    assert store.live_workers(since=now + timedelta(seconds=1)) == []


def test_ping(store: JobStore) -> None:
    store.ping()


def test_a_closed_store_is_unavailable(store: JobStore) -> None:
    job = store.create(make_job())
    store.close()
    store.close()
    with pytest.raises(StoreUnavailable):
        store.get(job.id)
    with pytest.raises(StoreUnavailable):
        store.ping()


@pytest.mark.parametrize("store", THREAD_SAFE_BACKENDS, indirect=True)
def test_many_threads_share_one_store(store: JobStore) -> None:
    """The gateway's threadpool and the embedded workers use one store object at once."""
    threads, jobs_each = 8, 25

    def client(_: int) -> None:
        for _ in range(jobs_each):
            job = store.create(make_job())
            assert store.get(job.id) == job
            assert store.start(job.id, utcnow()).status is JobStatus.running
            assert store.finish(job.id, make_result(), utcnow())

    assert _at_once(threads, client) == []
    assert store.count_by_status()["succeeded"] == threads * jobs_each


# -- SQLite: indexes, sharing a file, an unusable database --------------------------------------


def _sqlite_indexes(path) -> dict[str, str]:
    with sqlite3.connect(path) as conn:
        return dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"))


def test_sqlite_schema_and_indexes(tmp_path) -> None:
    path = tmp_path / "nested" / "dir" / "jobs.db"  # parent directories are created
    store = SqliteJobStore(path)
    store.ping()
    store.close()
    SqliteJobStore(path).ping()  # opening an existing database again is a no-op

    indexes = _sqlite_indexes(path)
    assert "(status)" in indexes["jobs_status"]
    assert "(created_at)" in indexes["jobs_created_at"]
    assert "UNIQUE" in indexes["jobs_idempotency_key"] and "IS NOT NULL" in indexes["jobs_idempotency_key"]
    assert "(client_id, idempotency_key)" in indexes["jobs_idempotency_key"]
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_sqlite_v2_file_is_upgraded_to_per_client_idempotency_keys(tmp_path) -> None:
    from classifier_common.store import sqlite as sqlite_module

    path = tmp_path / "jobs.db"
    with sqlite3.connect(path) as conn:  # a file as the previous version left it
        for script in (sqlite_module._SCHEMA, sqlite_module._MIGRATIONS[2]):
            conn.executescript(script)
        conn.execute(
            "INSERT INTO jobs (id, status, model, image, source, image_sha256, created_at, idempotency_key) "
            "VALUES ('old', 'queued', 'm', 'i', 'gallery', 'ab', '2026-01-01T00:00:00.000000+00:00', 'k')"
        )
        conn.execute("PRAGMA user_version = 2")
    store = SqliteJobStore(path)
    assert store.get("old").client_id == ""
    assert store.create(make_job(idempotency_key="k")).id == "old"
    other = make_job(idempotency_key="k", client_id="client-b")
    assert store.create(other) == other
    store.close()


def test_sqlite_two_stores_share_one_file(tmp_path) -> None:
    """Gateway, worker and results processes on one host may share a SQLite file."""
    gateway, worker = (
        SqliteJobStore(tmp_path / "jobs.db"),
        SqliteJobStore(tmp_path / "jobs.db"),
    )
    job = gateway.create(make_job())
    assert worker.start(job.id, utcnow()).status is JobStatus.running
    assert worker.finish(job.id, make_result(), utcnow())
    assert gateway.get(job.id).status is JobStatus.succeeded


def test_sqlite_change_counter_moves_when_another_connection_commits(tmp_path) -> None:
    store = SqliteJobStore(tmp_path / "jobs.db")
    first = store.change_counter()
    assert store.change_counter() == first  # nothing committed meanwhile
    store.create(make_job())  # this thread's own commit is not counted (SQLite's data_version)
    store.get(new_job_id())
    assert store.change_counter() == first
    for write in (lambda: store.create(make_job()), lambda: SqliteJobStore(tmp_path / "jobs.db").create(make_job())):
        before = store.change_counter()
        thread = threading.Thread(target=write)
        thread.start()
        thread.join()
        assert store.change_counter() != before


def test_change_counter_is_a_number_or_says_it_cannot_tell(store: JobStore) -> None:
    counter = store.change_counter()
    assert counter is None if isinstance(store, MongoJobStore) else isinstance(counter, int)


def test_sqlite_locked_database_is_unavailable(tmp_path) -> None:
    path = tmp_path / "jobs.db"
    store = SqliteJobStore(path, busy_timeout_s=0.2)
    job = store.create(make_job())

    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreUnavailable) as raised:
            store.create(make_job())
        assert "locked" in raised.value.message
        assert (raised.value.status_code, raised.value.retry_after) == (503, 1)
        with pytest.raises(StoreUnavailable):
            store.finish(job.id, make_result(), utcnow())
        # A store opened while the lock is held still starts, and reads (WAL) still work.
        fresh = SqliteJobStore(path, busy_timeout_s=0.2)
        assert fresh.get(job.id) == job
        with pytest.raises(StoreUnavailable):
            fresh.start(job.id, utcnow())
    finally:
        other.rollback()
        other.close()

    assert store.finish(job.id, make_result(), utcnow()) is True


def test_sqlite_threads_opening_a_new_file_together(tmp_path) -> None:
    """Switching a new file to WAL fails at once with "database is locked" (no busy handler)
    while another connection switches it too. Before the store retried it, about one of these
    trials in 40 failed (so 200 trials miss it in under 1 % of runs), and so could the gateway's
    first concurrent requests on a new file (503)."""
    threads = 8
    for trial in range(200):
        store = SqliteJobStore(tmp_path / f"jobs-{trial}.db")
        assert _at_once(threads, lambda _, store=store: store.create(make_job())) == [], f"trial {trial}"
        assert store.count_by_status()["queued"] == threads
        assert store._conn().execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        store.close()


def test_sqlite_unopenable_paths_are_unavailable(tmp_path) -> None:
    a_file = tmp_path / "not-a-directory"
    a_file.write_text("")
    for path in (
        a_file / "jobs.db",
        tmp_path,
    ):  # a parent that is a file; a directory as database
        store = SqliteJobStore(path)  # opening never fails: the service starts, and is not ready
        with pytest.raises(StoreUnavailable):
            store.ping()
        with pytest.raises(StoreUnavailable):
            store.create(make_job())


def test_sqlite_file_that_is_not_a_database_is_unavailable(tmp_path) -> None:
    path = tmp_path / "jobs.db"
    path.write_bytes(b"this is not a SQLite database, it is a text file of some length" * 20)
    with pytest.raises(StoreUnavailable):
        SqliteJobStore(path).ping()


# -- Mongo: indexes and an unreachable server ---------------------------------------------------


@pytest.mark.parametrize("store", [MONGO], indirect=True)
def test_mongo_indexes(store: MongoJobStore) -> None:
    store.ping()
    jobs = store.database["jobs"].index_information()
    assert jobs["status"]["key"] == [("status", 1)]
    assert jobs["created_at"]["key"] == [("created_at", 1)]
    assert "idempotency_key" not in jobs  # unique over every client: dropped
    assert jobs["client_idempotency_key"]["key"] == [("client_id", 1), ("idempotency_key", 1)]
    assert jobs["client_idempotency_key"]["unique"] is True
    assert jobs["client_idempotency_key"]["partialFilterExpression"] == {"idempotency_key": {"$type": "string"}}
    assert jobs["finished_at_ttl"]["expireAfterSeconds"] == store.retention_s
    workers = store.database["workers"].index_information()
    assert workers["last_seen_ttl"]["expireAfterSeconds"] == store.retention_s


@pytest.mark.parametrize("store", [MONGO], indirect=True)
def test_mongo_drops_the_index_unique_over_every_client(store: MongoJobStore) -> None:
    jobs = store.database["jobs"]
    jobs.create_index(
        "idempotency_key",
        name="idempotency_key",
        unique=True,
        partialFilterExpression={"idempotency_key": {"$type": "string"}},
    )
    a = store.create(make_job(idempotency_key="k", client_id="client-a"))
    b = store.create(make_job(idempotency_key="k", client_id="client-b"))
    assert a.id != b.id and "idempotency_key" not in jobs.index_information()


@pytest.mark.parametrize("store", [MONGO], indirect=True)
def test_mongo_retention_change_rebuilds_the_ttl_index(store: MongoJobStore) -> None:
    store.ping()
    job = store.create(make_job())
    changed = MongoJobStore(
        f"mongodb://host/{store.database.name}",
        retention_s=3600,
        client=store.database.client,
    )
    changed.ping()
    assert store.database["jobs"].index_information()["finished_at_ttl"]["expireAfterSeconds"] == 3600
    assert changed.get(job.id) == job


def test_mongo_unreachable_server_is_unavailable() -> None:
    """Real pymongo, no server needed: nothing listens on port 1."""
    store = MongoJobStore("mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=200")
    try:
        with pytest.raises(StoreUnavailable) as raised:
            store.ping()
        assert (raised.value.status_code, raised.value.retry_after) == (503, 5)
        with pytest.raises(StoreUnavailable):
            store.create(make_job())
        with pytest.raises(StoreUnavailable):
            store.get("any")
    finally:
        store.close()
