"""The job store contract, continued: the callback state the results service's notifier works
with (due, claimed under a lease, settled) on every adapter (see conftest.py), and a SQLite file
written before callbacks had state."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

from classifier_common.domain import Job, utcnow
from classifier_common.store import JobStore, open_store
from classifier_common.store import sqlite as sqlite_store
from tests.utils.jobs import GOLDFINCH, GOLDFINCH_RESULT, queued_job

MODEL = "efficientnet_lite0"


def _finished_job(store: JobStore, callback_url: str | None, finished_ago_s: float = 0) -> Job:
    now = utcnow()
    job = queued_job(now, callback_url=callback_url)
    store.create(job)
    store.start(job.id, now)
    assert store.finish(job.id, GOLDFINCH_RESULT, now - timedelta(seconds=finished_ago_s))
    return job


def test_callback_state_contract(store: JobStore) -> None:
    now = utcnow()
    queued = queued_job(now, callback_url="https://hooks.example.com/a")
    store.create(queued)
    _finished_job(store, None)  # no callback_url: never due
    job = _finished_job(store, "https://hooks.example.com/b")
    assert [j.id for j in store.callbacks_due(utcnow())] == [job.id]  # not the unfinished one

    lease = timedelta(seconds=30)
    now = utcnow()
    assert store.claim_callback(job.id, now, now + lease) == 1
    assert store.claim_callback(job.id, now, now + lease) is None  # held by the first claim
    assert store.callbacks_due(now) == []

    store.settle_callback(job.id, "retry", next_at=now + timedelta(seconds=60), error="the receiver answered 500")
    assert store.callbacks_due(now) == []
    later = now + timedelta(seconds=61)
    assert [j.id for j in store.callbacks_due(later)] == [job.id]
    assert store.claim_callback(job.id, later, later + lease) == 2

    # A notifier that died mid-attempt: its lease runs out and the callback is due again.
    after_lease = later + lease + timedelta(seconds=1)
    assert [j.id for j in store.callbacks_due(after_lease)] == [job.id]
    assert store.claim_callback(job.id, after_lease, after_lease + lease) == 3
    store.settle_callback(job.id, "delivered")
    assert store.callbacks_due(after_lease + timedelta(days=1)) == []
    assert store.claim_callback(job.id, after_lease + timedelta(days=1), after_lease + timedelta(days=2)) is None

    other = _finished_job(store, "https://hooks.example.com/c")
    store.settle_callback(other.id, "failed", error="given up")
    assert store.callbacks_due(utcnow() + timedelta(days=1)) == []


def test_a_version_1_sqlite_file_is_upgraded(tmp_path: Path) -> None:
    """A database written before callbacks had state (schema v1) is migrated on open, and its
    finished jobs with a callback_url are due."""
    path = tmp_path / "jobs.db"
    with sqlite3.connect(path) as db:
        db.executescript(sqlite_store._SCHEMA + "\nPRAGMA user_version = 1;")
        db.execute(
            "INSERT INTO jobs (id, status, model, image, source, image_sha256, created_at, finished_at, attempts, "
            "callback_url) VALUES (?, 'succeeded', ?, ?, 'gallery', ?, ?, ?, 1, ?)",
            ("a" * 32, MODEL, GOLDFINCH, "0" * 64, utcnow().isoformat(), utcnow().isoformat(), "https://h.example/x"),
        )
    store = open_store(f"sqlite:///{path}")
    assert [j.id for j in store.callbacks_due(utcnow())] == ["a" * 32]
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (sqlite_store.SCHEMA_VERSION,)
    store.close()
    open_store(f"sqlite:///{path}").ping()  # opening it again is a no-op
