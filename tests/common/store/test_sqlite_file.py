"""The SQLite file deleted, replaced or left behind in pieces: the store notices and refuses
rather than acknowledging work into a file nobody will open again, and a restart does not build
a new database out of an old one's write-ahead log."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from classifier_common.domain import Job, JobError, utcnow
from classifier_common.errors import StoreUnavailable
from classifier_common.store.sqlite import SqliteJobStore
from tests.utils.jobs import queued_job


def _job() -> Job:
    return queued_job()


def _in_thread(call):
    """Run ``call`` on a new thread (a new connection) and return what it returned or raised."""
    out: list[object] = []

    def run() -> None:
        try:
            out.append(call())
        except Exception as exc:  # noqa: BLE001 - handed back to the test
            out.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return out[0]


def test_a_deleted_file_makes_every_call_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    store = SqliteJobStore(path)
    kept = store.create(_job())
    path.unlink()
    with pytest.raises(StoreUnavailable, match="deleted or replaced"):
        store.ping()
    with pytest.raises(StoreUnavailable):
        store.create(_job())  # nothing is acknowledged into the unlinked file
    with pytest.raises(StoreUnavailable):
        store.get(kept.id)
    # A thread with no connection yet must not create a new, empty file at the path either.
    assert isinstance(_in_thread(store.ping), StoreUnavailable)
    assert isinstance(_in_thread(lambda: store.create(_job())), StoreUnavailable)
    assert not path.exists()
    store.close()


def test_a_replaced_file_makes_every_call_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    store = SqliteJobStore(path)
    store.create(_job())
    other = SqliteJobStore(tmp_path / "other.db")
    other.ping()
    other.close()
    (tmp_path / "other.db").replace(path)
    with pytest.raises(StoreUnavailable, match="deleted or replaced"):
        store.create(_job())
    store.close()


def test_a_new_database_never_shares_the_deleted_ones_wal(tmp_path: Path) -> None:
    """The file deleted while processes use it, and one process restarted: the new database it
    creates must not share the -wal/-shm still in use by the others (their pages would land in
    it), and the others must not write any more."""
    path = tmp_path / "jobs.db"
    old = SqliteJobStore(path)
    for _ in range(20):
        old.fail(old.create(_job()).id, JobError(code="invalid_image", message="not an image"), utcnow())
    path.unlink()

    restarted = SqliteJobStore(path)
    job = restarted.create(_job())
    with pytest.raises(StoreUnavailable):
        old.create(_job())
    assert _in_thread(lambda: restarted.get(job.id)) == job
    assert sum(restarted.count_by_status().values()) == 1
    old.close()
    restarted.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("SELECT id FROM jobs").fetchall() == [(job.id,)]
    aside = sorted(p.name.split(".orphaned-")[0] for p in tmp_path.glob("jobs.db-*.orphaned-*"))
    assert aside == ["jobs.db-shm", "jobs.db-wal"]
