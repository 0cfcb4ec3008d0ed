"""The store's batch records (POST /v1/batches), against every adapter; and a SQLite file of an
earlier schema upgraded to hold them."""

from __future__ import annotations

import sqlite3
from datetime import timedelta

from classifier_common.batches import batch_id_for
from classifier_common.domain import Batch, BatchItem, ItemError, JobStatus, new_job_id, utcnow
from classifier_common.store import JobStore
from classifier_common.store.sqlite import SqliteJobStore
from tests.utils.jobs import queued_job
from tests.utils.sqlite_files import schema_v3_file


def make_batch(**fields: object) -> Batch:
    values: dict[str, object] = {
        "id": new_job_id(),
        "model": "efficientnet_lite0",
        "created_at": utcnow(),
        "items": [
            BatchItem(index=0, image="a.jpg", source="upload", job_id=new_job_id()),
            BatchItem(
                index=1,
                image="notes.txt",
                source="upload",
                error=ItemError(code="unsupported_media_type", message="not an image", details={"accepted": ["PNG"]}),
            ),
            BatchItem(index=2, image="n07747607_orange.JPEG", source="gallery", job_id=new_job_id()),
        ],
        "request_sha256": "f" * 64,
    }
    values.update(fields)
    return Batch(**values)  # type: ignore[arg-type]


def test_batch_round_trip_keeps_every_field(store: JobStore) -> None:
    batch = make_batch(client_id="client-a", idempotency_key="k", callback_url="https://example.org/hook")
    assert store.create_batch(batch) == batch
    assert store.get_batch(batch.id) == batch
    assert store.get_batch(new_job_id()) is None


def test_same_idempotency_key_returns_the_first_batch_per_client(store: JobStore) -> None:
    first = store.create_batch(make_batch(client_id="a", idempotency_key="k"))
    again = store.create_batch(make_batch(client_id="a", idempotency_key="k", request_sha256="0" * 64))
    assert again == first
    other_client = make_batch(client_id="b", idempotency_key="k")
    assert store.create_batch(other_client) == other_client


def test_same_id_returns_the_first_batch(store: JobStore) -> None:
    """A batch's id derives from its key: two racing requests with one key name one batch."""
    batch_id = batch_id_for("a", "k")
    first = store.create_batch(make_batch(id=batch_id, client_id="a", idempotency_key="k"))
    assert store.create_batch(make_batch(id=batch_id, client_id="a", idempotency_key="k")) == first


def test_jobs_carry_their_batch_and_are_read_together(store: JobStore) -> None:
    batch_id = new_job_id()
    jobs = [store.create(queued_job(batch_id=batch_id)) for _ in range(3)]
    alone = store.create(queued_job())
    assert store.get(jobs[0].id).batch_id == batch_id
    assert store.get(alone.id).batch_id is None
    wanted = [job.id for job in jobs] + [new_job_id()]  # one that does not exist
    assert sorted(store.get_many(wanted), key=lambda job: job.id) == sorted(jobs, key=lambda job: job.id)
    assert store.get_many([]) == []


def test_get_many_reads_more_jobs_than_one_query_binds(store: JobStore) -> None:
    ids = [store.create(queued_job()).id for _ in range(520)]
    assert {job.id for job in store.get_many(ids)} == set(ids)


def test_purge_forgets_batches_older_than_retention(store: JobStore) -> None:
    old = store.create_batch(make_batch(created_at=utcnow() - timedelta(minutes=30)))
    recent = store.create_batch(make_batch())
    store.purge_finished(utcnow() - timedelta(minutes=10))
    assert store.get_batch(old.id) is None
    assert store.get_batch(recent.id) == recent


def test_sqlite_v3_file_is_upgraded_with_batches(tmp_path) -> None:
    from classifier_common.store import sqlite as sqlite_module

    path = schema_v3_file(
        tmp_path / "jobs.db",
        "INSERT INTO jobs (id, status, model, image, source, image_sha256, created_at) "
        "VALUES ('old', 'queued', 'm', 'i', 'gallery', 'ab', '2026-01-01T00:00:00.000000+00:00')",
    )
    store = SqliteJobStore(path)
    old = store.get("old")
    assert old is not None and old.batch_id is None and old.status is JobStatus.queued
    batch = make_batch()
    assert store.create_batch(batch) == store.get_batch(batch.id) == batch
    store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (sqlite_module.SCHEMA_VERSION,)
        indexes = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"jobs_batch_id", "batches_idempotency_key", "batches_created_at"} <= indexes
