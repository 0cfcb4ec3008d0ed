"""Stored uploads (the claim check) in the job store contract: every test runs against every
adapter. An upload is kept by job id for as long as its job, and deleted with it."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest

from classifier_common.domain import JobError, utcnow
from classifier_common.store import JobStore
from classifier_common.store.mongo import UPLOADS_BUCKET, MongoJobStore
from tests.utils.jobs import queued_job
from tests.utils.sqlite_files import schema_v3_file

from .conftest import MONGO

# Larger than one GridFS chunk (255 KiB), so a stored upload spans several.
BIG = os.urandom(700 * 1024)


def test_an_upload_round_trips_byte_for_byte(store: JobStore) -> None:
    job = store.create(queued_job(source="upload"))
    assert store.get_upload(job.id) is None
    store.put_upload(job.id, BIG)
    assert store.get_upload(job.id) == BIG
    store.put_upload(job.id, BIG)  # a replayed submission stores nothing twice
    assert store.get_upload(job.id) == BIG
    store.delete_upload(job.id)
    assert store.get_upload(job.id) is None
    store.delete_upload(job.id)  # deleting what is not there is no error


def test_uploads_are_kept_apart_per_job(store: JobStore) -> None:
    a, b = store.create(queued_job(source="upload")), store.create(queued_job(source="upload"))
    store.put_upload(a.id, b"a" * 10)
    store.put_upload(b.id, b"b" * 20)
    store.delete_upload(a.id)
    assert (store.get_upload(a.id), store.get_upload(b.id)) == (None, b"b" * 20)


def test_rolling_back_a_job_deletes_its_upload(store: JobStore) -> None:
    job = store.create(queued_job(source="upload"))
    store.put_upload(job.id, BIG)
    store.delete(job.id)
    assert store.get(job.id) is None
    assert store.get_upload(job.id) is None


def test_an_upload_is_kept_until_its_job_is_purged(store: JobStore) -> None:
    now = utcnow()
    old = now - timedelta(hours=2)
    finished = store.create(queued_job(source="upload", created_at=old - timedelta(hours=1)))
    recent = store.create(queued_job(source="upload", created_at=old))
    queued = store.create(queued_job(source="upload", created_at=old))
    for job in (finished, recent, queued):
        store.put_upload(job.id, job.id.encode())
    store.fail(finished.id, JobError(code="x", message="y"), old)
    store.fail(recent.id, JobError(code="x", message="y"), now - timedelta(minutes=5))
    # Finished is not gone: the upload stays for as long as the job (a retry may want it).
    assert store.get_upload(finished.id) == finished.id.encode()

    assert store.purge_finished(now - timedelta(hours=1)) == 1
    assert store.get_upload(finished.id) is None
    assert store.get_upload(recent.id) == recent.id.encode()
    assert store.get_upload(queued.id) == queued.id.encode()


def test_purge_deletes_uploads_whose_job_is_gone(store: JobStore) -> None:
    """A job that vanished without its upload (a rollback whose second delete failed; on MongoDB,
    the TTL index expiring the job): the next purge deletes the upload."""
    gone, kept = store.create(queued_job(source="upload")), store.create(queued_job(source="upload"))
    store.put_upload(gone.id, BIG)
    store.put_upload(kept.id, b"kept")
    _delete_job_only(store, gone.id)
    assert store.get_upload(gone.id) == BIG
    store.purge_finished(utcnow() + timedelta(seconds=1))
    assert store.get_upload(gone.id) is None
    assert store.get_upload(kept.id) == b"kept"


def _delete_job_only(store: JobStore, job_id: str) -> None:
    if isinstance(store, MongoJobStore):
        store.database["jobs"].delete_one({"_id": job_id})  # as the TTL monitor does
    else:
        with store._conn() as conn:  # type: ignore[attr-defined]
            conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))


@pytest.mark.parametrize("store", [MONGO], indirect=True)
def test_mongo_keeps_uploads_in_gridfs(store: MongoJobStore) -> None:
    job = store.create(queued_job(source="upload"))
    store.put_upload(job.id, BIG)
    files = store.database[f"{UPLOADS_BUCKET}.files"]
    chunks = store.database[f"{UPLOADS_BUCKET}.chunks"]
    assert files.find_one({"_id": job.id})["length"] == len(BIG)
    assert chunks.count_documents({"files_id": job.id}) == 3
    store.delete(job.id)
    assert files.count_documents({}) == 0 and chunks.count_documents({}) == 0


def test_sqlite_v3_file_is_upgraded_to_keep_uploads(tmp_path) -> None:
    import sqlite3

    from classifier_common.store import sqlite as sqlite_module

    path = schema_v3_file(tmp_path / "jobs.db")
    store = sqlite_module.SqliteJobStore(path)
    job = store.create(queued_job(source="upload"))
    store.put_upload(job.id, BIG)
    assert store.get_upload(job.id) == BIG
    store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (sqlite_module.SCHEMA_VERSION,)
