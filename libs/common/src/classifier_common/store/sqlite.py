"""The SQLite job store: the embedded default (one file, no server), also usable by several
processes on one host.

Concurrency: every thread gets its own connection (FastAPI's threadpool and the embedded
worker threads call the store at the same time; a sqlite3 connection must not be shared while
in use). The database runs in WAL mode, so readers never wait for the writer, and each
lifecycle write is a single autocommitted statement whose WHERE clause carries the condition:
SQLite runs it atomically, so of N racing ``finish`` calls exactly one changes a row.

Durability: ``synchronous=NORMAL`` in WAL mode survives a crash of the process (a SIGKILLed
worker or gateway loses no committed write); only a power loss or kernel crash may roll back
the last commits. Pass ``synchronous="FULL"`` to trade throughput for that too.

The file deleted or replaced under a running process: its open connections would go on writing
into the unlinked inode, acknowledging work into a file nobody will open again. So every call
checks, before and after it runs, that the path still names the file the store opened, and
raises StoreUnavailable otherwise (a 503, and readiness fails) until the process restarts. A
process opening the path anew finds -wal/-shm files without their database: those are the
deleted database's, possibly still open in processes that have not noticed yet, so they are set
aside (renamed) before the new database is created, which then never shares them.

Timestamps are stored as fixed-width ISO-8601 UTC text (``2024-05-01T12:00:00.123000+00:00``):
readable in the sqlite3 shell, ordered correctly by plain text comparison, and parsed back to
the same aware datetime. Naive datetimes are taken as UTC, as BSON does for the Mongo store.
"""

from __future__ import annotations

import fcntl
import functools
import json
import logging
import os
import sqlite3
import threading
import time
import urllib.request
from collections.abc import Callable, Collection, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from pydantic import TypeAdapter

from classifier_common.domain import FINISHED, RETRYABLE, Batch, BatchItem, Job, JobError, JobResult, JobStatus
from classifier_common.errors import StoreUnavailable
from classifier_common.store.base import CacheKey, CallbackOutcome, FinishedJob, JobQuery, WorkerInfo

log = logging.getLogger(__name__)

SCHEMA_VERSION = 7

# Run only when PRAGMA user_version says the file is older: checking an up-to-date schema then
# needs no write lock, so a store opens even while another connection holds the database locked.
# _SCHEMA makes a new file v1, then each _MIGRATIONS[n] brings it from n-1 to n.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id              TEXT PRIMARY KEY,
    status          TEXT NOT NULL,
    model           TEXT NOT NULL,
    image           TEXT NOT NULL,
    source          TEXT NOT NULL,
    image_sha256    TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    started_at      TEXT,
    finished_at     TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    result          TEXT,
    error           TEXT,
    request_id      TEXT,
    idempotency_key TEXT,
    callback_url    TEXT
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status);
CREATE INDEX IF NOT EXISTS jobs_created_at ON jobs (created_at);
CREATE INDEX IF NOT EXISTS jobs_finished_at ON jobs (finished_at) WHERE finished_at IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS jobs_idempotency_key ON jobs (idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE TABLE IF NOT EXISTS result_cache (
    model         TEXT NOT NULL,
    model_version TEXT NOT NULL,
    image_sha256  TEXT NOT NULL,
    result        TEXT NOT NULL,
    stored_at     TEXT NOT NULL,
    PRIMARY KEY (model, model_version, image_sha256)
);

CREATE TABLE IF NOT EXISTS workers (
    worker_id TEXT PRIMARY KEY,
    models    TEXT NOT NULL,
    last_seen TEXT NOT NULL
);
"""

_MIGRATIONS = {
    # Callback delivery state (classifier_common.callbacks). A job with a callback_url and a NULL
    # callback_state has its callback pending; the partial index holds exactly those.
    2: """
ALTER TABLE jobs ADD COLUMN callback_state TEXT;
ALTER TABLE jobs ADD COLUMN callback_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN callback_next_at TEXT;
ALTER TABLE jobs ADD COLUMN callback_lease_until TEXT;
ALTER TABLE jobs ADD COLUMN callback_error TEXT;
CREATE INDEX IF NOT EXISTS jobs_callback_pending ON jobs (callback_next_at)
    WHERE callback_url IS NOT NULL AND callback_state IS NULL;
""",
    # An Idempotency-Key is unique per client ('' when API keys are off), no longer globally.
    3: """
ALTER TABLE jobs ADD COLUMN client_id TEXT NOT NULL DEFAULT '';
DROP INDEX IF EXISTS jobs_idempotency_key;
CREATE UNIQUE INDEX jobs_idempotency_key ON jobs (client_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
""",
    # A queued job's place in the queue (queued_ahead): a count over the queued jobs created
    # before it. The index holds queued jobs only, with every column the count reads (so it
    # reads no row of the table).
    4: """
CREATE INDEX IF NOT EXISTS jobs_queue_order ON jobs (created_at, id, model, status) WHERE status = 'queued';
""",
    # Listing (newest first, per client or all, paged by (created_at, id)), the per-client count
    # of queued jobs, and the link between a job and its retry.
    5: """
ALTER TABLE jobs ADD COLUMN retry_of TEXT;
ALTER TABLE jobs ADD COLUMN retried_by TEXT;
CREATE INDEX IF NOT EXISTS jobs_created_at_id ON jobs (created_at, id);
CREATE INDEX IF NOT EXISTS jobs_client_created_at_id ON jobs (client_id, created_at, id);
CREATE INDEX IF NOT EXISTS jobs_client_status ON jobs (client_id, status);
""",
    # Batch submissions (POST /v1/batches): the batch record, and each job's batch.
    6: """
CREATE TABLE IF NOT EXISTS batches (
    id              TEXT PRIMARY KEY,
    client_id       TEXT NOT NULL DEFAULT '',
    idempotency_key TEXT,
    model           TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    request_sha256  TEXT NOT NULL,
    callback_url    TEXT,
    items           TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS batches_idempotency_key ON batches (client_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS batches_created_at ON batches (created_at);
ALTER TABLE jobs ADD COLUMN batch_id TEXT;
CREATE INDEX IF NOT EXISTS jobs_batch_id ON jobs (batch_id) WHERE batch_id IS NOT NULL;
""",
    # Uploads above the claim-check threshold, kept apart from the jobs table so that reading and
    # scanning jobs never pages their bytes in.
    7: """
CREATE TABLE IF NOT EXISTS uploads (
    job_id    TEXT PRIMARY KEY,
    data      BLOB NOT NULL,
    stored_at TEXT NOT NULL
);
""",
}


def _statements(script: str) -> list[str]:
    return [statement.strip() for statement in script.split(";") if statement.strip()]


_JOB_COLUMNS = (
    "id, status, model, image, source, image_sha256, created_at, started_at, finished_at, "
    "attempts, result, error, request_id, idempotency_key, callback_url, client_id, batch_id, retry_of, retried_by"
)
_BATCH_COLUMNS = "id, client_id, idempotency_key, model, created_at, request_sha256, callback_url, items"

_UNFINISHED = (JobStatus.queued.value, JobStatus.running.value)
_FINISHED = tuple(sorted(status.value for status in FINISHED))
_WORKED = (JobStatus.succeeded.value, JobStatus.failed.value)  # finished by a worker
# Written into the SQL rather than bound: SQLite uses a partial index only for a query whose
# WHERE names the index's own literal.
_QUEUED_SQL = f"status = '{JobStatus.queued.value}'"
_RETRYABLE = tuple(sorted(status.value for status in RETRYABLE))

# Primary result codes meaning "the database cannot be used right now" (locked, missing,
# unreadable, read-only, disk full...), as opposed to a bug in our SQL.
_UNAVAILABLE_CODES = {
    sqlite3.SQLITE_PERM,
    sqlite3.SQLITE_BUSY,
    sqlite3.SQLITE_LOCKED,
    sqlite3.SQLITE_READONLY,
    sqlite3.SQLITE_IOERR,
    sqlite3.SQLITE_CORRUPT,
    sqlite3.SQLITE_FULL,
    sqlite3.SQLITE_CANTOPEN,
    sqlite3.SQLITE_PROTOCOL,
    sqlite3.SQLITE_NOTADB,
}

RETRY_AFTER_S = 1  # a lock is usually held for milliseconds

P = ParamSpec("P")
R = TypeVar("R")


def _translate_errors(method: Callable[P, R]) -> Callable[P, R]:
    """Turn "the database cannot be used" into StoreUnavailable (a 503, never a 500), and an
    answer from a file that is no longer at its path into StoreUnavailable too."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        store = args[0]
        try:
            store._check_file()  # type: ignore[attr-defined]
            result = method(*args, **kwargs)
            store._check_file()  # type: ignore[attr-defined]
            return result
        except sqlite3.Error as exc:
            code = getattr(exc, "sqlite_errorcode", None)
            if code is None or (code & 0xFF) not in _UNAVAILABLE_CODES:
                raise
            raise StoreUnavailable(f"job store unavailable: {exc}", retry_after=RETRY_AFTER_S) from exc
        except OSError as exc:  # creating the database's directory
            raise StoreUnavailable(f"job store unavailable: {exc}", retry_after=RETRY_AFTER_S) from exc

    return wrapper


def _ts(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _ts_or_none(value: datetime | None) -> str | None:
    return None if value is None else _ts(value)


def _parse_ts(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _job_params(job: Job) -> tuple[Any, ...]:
    return (
        job.id,
        job.status.value,
        job.model,
        job.image,
        job.source,
        job.image_sha256,
        _ts(job.created_at),
        _ts_or_none(job.started_at),
        _ts_or_none(job.finished_at),
        job.attempts,
        None if job.result is None else job.result.model_dump_json(),
        None if job.error is None else job.error.model_dump_json(),
        job.request_id,
        job.idempotency_key,
        job.callback_url,
        job.client_id,
        job.batch_id,
        job.retry_of,
        job.retried_by,
    )


def _job_from_row(row: sqlite3.Row) -> Job:
    return Job(
        id=row["id"],
        status=JobStatus(row["status"]),
        model=row["model"],
        image=row["image"],
        source=row["source"],
        image_sha256=row["image_sha256"],
        created_at=datetime.fromisoformat(row["created_at"]),
        started_at=_parse_ts(row["started_at"]),
        finished_at=_parse_ts(row["finished_at"]),
        attempts=row["attempts"],
        result=None if row["result"] is None else JobResult.model_validate_json(row["result"]),
        error=None if row["error"] is None else JobError.model_validate_json(row["error"]),
        request_id=row["request_id"],
        idempotency_key=row["idempotency_key"],
        callback_url=row["callback_url"],
        client_id=row["client_id"],
        batch_id=row["batch_id"],
        retry_of=row["retry_of"],
        retried_by=row["retried_by"],
    )


_ITEMS = TypeAdapter(list[BatchItem])


def _batch_params(batch: Batch) -> tuple[Any, ...]:
    return (
        batch.id,
        batch.client_id,
        batch.idempotency_key,
        batch.model,
        _ts(batch.created_at),
        batch.request_sha256,
        batch.callback_url,
        _ITEMS.dump_json(batch.items).decode(),
    )


def _batch_from_row(row: sqlite3.Row) -> Batch:
    return Batch(
        id=row["id"],
        client_id=row["client_id"],
        idempotency_key=row["idempotency_key"],
        model=row["model"],
        created_at=datetime.fromisoformat(row["created_at"]),
        request_sha256=row["request_sha256"],
        callback_url=row["callback_url"],
        items=_ITEMS.validate_json(row["items"]),
    )


def _placeholders(values: Iterable[object]) -> str:
    return ", ".join("?" for _ in values)


class SqliteJobStore:
    """:class:`~classifier_common.store.base.JobStore` on a SQLite file.

    Constructing the store touches nothing; the first call creates the parent directory, the
    file and the schema, and raises StoreUnavailable if it cannot (so a service still starts and
    reports not-ready). ``busy_timeout_s`` bounds how long a write waits for a lock held by
    another connection before giving up with StoreUnavailable: short, so a request fails fast.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout_s: float = 2.0,
        synchronous: str = "NORMAL",
    ) -> None:
        if str(path) == ":memory:":
            # Each thread has its own connection, and each would see its own empty database.
            raise ValueError("SqliteJobStore needs a file; an in-memory database is per connection")
        if synchronous.upper() not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
            raise ValueError(f"unknown synchronous mode {synchronous!r}")
        self.path = Path(path)
        self._busy_timeout_s = busy_timeout_s
        self._synchronous = synchronous.upper()
        self._local = threading.local()
        self._lock = threading.Lock()  # guards _connections, _schema_ready and _closed
        # Every connection we opened, with its thread: close() closes them all, and the
        # connections of threads that have ended are closed when a new one is opened.
        self._connections: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._schema_ready = False
        self._closed = False
        self._identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the file opened first

    def __repr__(self) -> str:
        return f"SqliteJobStore({str(self.path)!r})"

    # -- connections -------------------------------------------------------------------------

    def _check_file(self) -> None:
        """Raise StoreUnavailable if the path no longer names the file this store opened."""
        if self._identity is None:
            return
        try:
            stat = os.stat(self.path)
            same = (stat.st_dev, stat.st_ino) == self._identity
        except FileNotFoundError:
            same = False
        if not same:
            raise StoreUnavailable(
                f"the database file {self.path} was deleted or replaced while in use: nothing more is "
                "written; restart every process using it (see docs/guarantees.md)",
                retry_after=RETRY_AFTER_S,
            )

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        if self._closed:
            raise StoreUnavailable("job store is closed", retry_after=RETRY_AFTER_S)
        # Never create a new file where the one in use was deleted.
        self._check_file()
        conn = self._first_open() if self._identity is None else self._open()
        with self._lock:
            if self._closed:
                conn.close()
                raise StoreUnavailable("job store is closed", retry_after=RETRY_AFTER_S)
            alive = []
            for thread, other in self._connections:
                if thread.is_alive():
                    alive.append((thread, other))
                else:
                    other.close()
            alive.append((threading.current_thread(), conn))
            self._connections = alive
        self._local.conn = conn
        return conn

    def _first_open(self) -> sqlite3.Connection:
        """Open under an exclusive lock on a file beside the database, so that of the processes
        opening it at once only one can find a -wal/-shm without their database (and set them
        aside) and none can take another's fresh log for a leftover. Records the file's identity."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(f"{self.path}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not self.path.exists():
                self._set_aside_leftovers()
            conn = self._open(create=True)
            stat = os.stat(self.path)
        with self._lock:
            if self._identity is None:
                self._identity = (stat.st_dev, stat.st_ino)
        self._check_file()  # another thread may have opened an earlier file at this path
        return conn

    def _set_aside_leftovers(self) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        for suffix in ("-wal", "-shm"):
            leftover = Path(f"{self.path}{suffix}")
            if leftover.exists():
                aside = Path(f"{self.path}{suffix}.orphaned-{stamp}")
                leftover.rename(aside)
                log.warning("%s had no database beside it: set aside as %s", leftover, aside)

    def _open(self, *, create: bool = False) -> sqlite3.Connection:
        # isolation_level=None: autocommit, so each statement is its own transaction and we
        # open explicit ones only where needed. check_same_thread=False only so that close()
        # may close it from another thread; in use it never leaves its thread. Only the first
        # open may create the file (mode=rwc); later ones fail where it has gone.
        mode = "rwc" if create else "rw"
        conn = sqlite3.connect(
            f"file:{urllib.request.pathname2url(str(self.path.absolute()))}?mode={mode}",
            uri=True,
            timeout=self._busy_timeout_s,
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            conn.row_factory = sqlite3.Row
            self._enable_wal(conn)
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            self._ensure_schema(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _enable_wal(self, conn: sqlite3.Connection) -> None:
        # Switching a new file to WAL takes an exclusive lock, and when other connections (threads
        # or processes opening the same new file) are switching it too, SQLite fails the pragma at
        # once with SQLITE_BUSY instead of calling the busy handler. So wait here as any other
        # write waits for a lock: retry until the busy timeout.
        deadline = time.monotonic() + self._busy_timeout_s
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() >= deadline:
                    raise
            time.sleep(0.005)

    def _ensure_schema(self, conn: sqlite3.Connection) -> None:
        if self._schema_ready:
            return
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        if version < SCHEMA_VERSION:
            self._upgrade(conn)
        elif version > SCHEMA_VERSION:
            raise RuntimeError(f"{self.path} has schema v{version}, newer than this code's v{SCHEMA_VERSION}")
        self._schema_ready = True

    def _upgrade(self, conn: sqlite3.Connection) -> None:
        # BEGIN IMMEDIATE: processes opening an old or a new file at once upgrade it one after
        # the other; each reads the version again under the lock, so the later ones do nothing.
        conn.execute("BEGIN IMMEDIATE")
        try:
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            scripts = [_SCHEMA] if version < 1 else []
            scripts += [_MIGRATIONS[n] for n in range(max(version, 1) + 1, SCHEMA_VERSION + 1)]
            for script in scripts:
                for statement in _statements(script):
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        if scripts:
            log.info("job store schema v%d ready in %s (was v%d)", SCHEMA_VERSION, self.path, version)

    def _select_job(self, conn: sqlite3.Connection, job_id: str) -> Job | None:
        row = conn.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else _job_from_row(row)

    # -- JobStore ----------------------------------------------------------------------------

    @_translate_errors
    def ping(self) -> None:
        self._conn().execute("SELECT 1 FROM jobs LIMIT 1").fetchall()

    @_translate_errors
    def create(self, job: Job) -> Job:
        conn = self._conn()
        params = _job_params(job)
        try:
            conn.execute(
                f"INSERT INTO jobs ({_JOB_COLUMNS}) VALUES ({_placeholders(params)})",
                params,
            )
        except sqlite3.IntegrityError:
            if job.idempotency_key is None:
                raise  # a duplicate job id is a bug
            row = conn.execute(
                f"SELECT {_JOB_COLUMNS} FROM jobs WHERE client_id = ? AND idempotency_key = ?",
                (job.client_id, job.idempotency_key),
            ).fetchone()
            if row is None:
                raise
            return _job_from_row(row)
        return job

    @_translate_errors
    def get(self, job_id: str) -> Job | None:
        return self._select_job(self._conn(), job_id)

    @_translate_errors
    def list_jobs(self, query: JobQuery) -> list[Job]:
        where: list[str] = []
        params: list[Any] = []
        if query.client_id is not None:
            where.append("client_id = ?")
            params.append(query.client_id)
        if query.statuses is not None:
            where.append(f"status IN ({_placeholders(query.statuses)})")
            params.extend(status.value for status in query.statuses)
        if query.model is not None:
            where.append("model = ?")
            params.append(query.model)
        if query.created_after is not None:
            where.append("created_at > ?")
            params.append(_ts(query.created_after))
        if query.created_before is not None:
            where.append("created_at < ?")
            params.append(_ts(query.created_before))
        if query.before is not None:
            created_at, job_id = query.before
            where.append("(created_at < ? OR (created_at = ? AND id < ?))")
            params.extend((_ts(created_at), _ts(created_at), job_id))
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        rows = (
            self._conn()
            .execute(
                f"SELECT {_JOB_COLUMNS} FROM jobs {clause}ORDER BY created_at DESC, id DESC LIMIT ?",
                (*params, query.limit),
            )
            .fetchall()
        )
        return [_job_from_row(row) for row in rows]

    @_translate_errors
    def count_queued(self, client_id: str) -> int:
        row = (
            self._conn()
            .execute(
                "SELECT COUNT(*) FROM jobs WHERE client_id = ? AND status = ?", (client_id, JobStatus.queued.value)
            )
            .fetchone()
        )
        return int(row[0])

    @_translate_errors
    def claim_retry(self, job_id: str, retry_id: str) -> bool:
        cursor = self._conn().execute(
            f"UPDATE jobs SET retried_by = ? WHERE id = ? AND retried_by IS NULL "
            f"AND status IN ({_placeholders(_RETRYABLE)})",
            (retry_id, job_id, *_RETRYABLE),
        )
        return cursor.rowcount == 1

    @_translate_errors
    def release_retry(self, job_id: str, retry_id: str) -> None:
        self._conn().execute("UPDATE jobs SET retried_by = NULL WHERE id = ? AND retried_by = ?", (job_id, retry_id))

    @_translate_errors
    def finished_among(self, job_ids: list[str]) -> set[str]:
        conn = self._conn()
        unfinished: set[str] = set()
        for start in range(0, len(job_ids), 500):  # SQLite bounds the number of parameters
            chunk = job_ids[start : start + 500]
            rows = conn.execute(
                f"SELECT id FROM jobs WHERE id IN ({_placeholders(chunk)}) "
                f"AND status IN ({_placeholders(_UNFINISHED)})",
                (*chunk, *_UNFINISHED),
            )
            unfinished.update(row[0] for row in rows)
        return set(job_ids) - unfinished

    @_translate_errors
    def change_counter(self) -> int | None:
        # Read from the database's shared memory: no table is read (sqlite.org/pragma.html#pragma_data_version).
        return self._conn().execute("PRAGMA data_version").fetchone()[0]

    @_translate_errors
    def delete(self, job_id: str) -> None:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
            conn.execute("DELETE FROM uploads WHERE job_id = ?", (job_id,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    @_translate_errors
    def start(self, job_id: str, now: datetime) -> Job | None:
        conn = self._conn()
        # fetchall(): with RETURNING, the write commits only once the statement has run to
        # its end, so the cursor must be drained.
        rows = conn.execute(
            f"UPDATE jobs SET status = ?, started_at = ?, attempts = attempts + 1 "
            f"WHERE id = ? AND status IN ({_placeholders(_UNFINISHED)}) RETURNING {_JOB_COLUMNS}",
            (JobStatus.running.value, _ts(now), job_id, *_UNFINISHED),
        ).fetchall()
        if rows:
            return _job_from_row(rows[0])
        # Not updated: either no such job or it is finished, and a finished job never changes
        # again, so reading it now returns what the caller must skip.
        return self._select_job(conn, job_id)

    @_translate_errors
    def finish(self, job_id: str, result: JobResult, now: datetime) -> bool:
        cursor = self._conn().execute(
            f"UPDATE jobs SET status = ?, result = ?, finished_at = ? "
            f"WHERE id = ? AND status IN ({_placeholders(_UNFINISHED)})",
            (
                JobStatus.succeeded.value,
                result.model_dump_json(),
                _ts(now),
                job_id,
                *_UNFINISHED,
            ),
        )
        return cursor.rowcount == 1

    @_translate_errors
    def fail(self, job_id: str, error: JobError, now: datetime) -> bool:
        cursor = self._conn().execute(
            f"UPDATE jobs SET status = ?, error = ?, finished_at = ? "
            f"WHERE id = ? AND status IN ({_placeholders(_UNFINISHED)})",
            (
                JobStatus.failed.value,
                error.model_dump_json(),
                _ts(now),
                job_id,
                *_UNFINISHED,
            ),
        )
        return cursor.rowcount == 1

    @_translate_errors
    def cancel(self, job_id: str, now: datetime) -> Job | None:
        conn = self._conn()
        rows = conn.execute(
            f"UPDATE jobs SET status = ?, finished_at = ? WHERE id = ? AND status = ? RETURNING {_JOB_COLUMNS}",
            (JobStatus.canceled.value, _ts(now), job_id, JobStatus.queued.value),
        ).fetchall()
        if rows:
            return _job_from_row(rows[0])
        return self._select_job(conn, job_id)

    @_translate_errors
    def unfinished(self, limit: int = 10_000) -> list[Job]:
        rows = (
            self._conn()
            .execute(
                f"SELECT {_JOB_COLUMNS} FROM jobs WHERE status IN ({_placeholders(_UNFINISHED)}) "
                "ORDER BY created_at, id LIMIT ?",
                (*_UNFINISHED, limit),
            )
            .fetchall()
        )
        return [_job_from_row(row) for row in rows]

    @_translate_errors
    def count_by_status(self) -> dict[str, int]:
        counts = {status.value: 0 for status in JobStatus}
        for status, count in self._conn().execute("SELECT status, COUNT(*) FROM jobs GROUP BY status"):
            counts[status] = count
        return counts

    @_translate_errors
    def queued_ahead(self, job: Job, models: Collection[str] | None = None) -> int:
        # INDEXED BY: without statistics the planner prefers the status index, which reads every
        # queued job's row; this one reads only the entries before the job's own.
        sql = f"SELECT COUNT(*) FROM jobs INDEXED BY jobs_queue_order WHERE {_QUEUED_SQL} AND (created_at, id) < (?, ?)"
        params: list[Any] = [_ts(job.created_at), job.id]
        if models is not None:
            sql += f" AND model IN ({_placeholders(models)})"
            params += list(models)
        return int(self._conn().execute(sql, params).fetchone()[0])

    @_translate_errors
    def finished_since(
        self, since: datetime, models: Collection[str] | None = None, limit: int = 10_000
    ) -> list[FinishedJob]:
        # INDEXED BY: the planner would take the status index and read every finished job.
        sql = (
            "SELECT model, status, json_extract(error, '$.code') AS error_code, created_at, started_at, finished_at "
            f"FROM jobs INDEXED BY jobs_finished_at WHERE finished_at >= ? AND status IN ({_placeholders(_WORKED)})"
        )
        params: list[Any] = [_ts(since), *_WORKED]
        if models is not None:
            sql += f" AND model IN ({_placeholders(models)})"
            params += list(models)
        rows = self._conn().execute(f"{sql} ORDER BY finished_at DESC LIMIT ?", (*params, limit)).fetchall()
        return [
            FinishedJob(
                model=row["model"],
                status=JobStatus(row["status"]),
                error_code=row["error_code"],
                created_at=datetime.fromisoformat(row["created_at"]),
                started_at=_parse_ts(row["started_at"]),
                finished_at=datetime.fromisoformat(row["finished_at"]),
            )
            for row in rows
        ]

    @_translate_errors
    def unfinished_by_model(self) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = {}
        rows = self._conn().execute(
            f"SELECT model, status, COUNT(*) FROM jobs WHERE status IN ({_placeholders(_UNFINISHED)}) "
            "GROUP BY model, status",
            _UNFINISHED,
        )
        for model, status, count in rows:
            counts.setdefault(model, dict.fromkeys(_UNFINISHED, 0))[status] = count
        return counts

    @_translate_errors
    def purge_finished(self, older_than: datetime) -> int:
        """Also forgets workers not seen since ``older_than`` and batches created before it (Mongo
        does these with TTL indexes)."""
        conn = self._conn()
        cursor = conn.execute(
            f"DELETE FROM jobs WHERE status IN ({_placeholders(_FINISHED)}) AND finished_at < ?",
            (*_FINISHED, _ts(older_than)),
        )
        purged = cursor.rowcount
        conn.execute("DELETE FROM batches WHERE created_at < ?", (_ts(older_than),))
        # The uploads of the jobs just deleted, and of any job rolled back without its upload.
        conn.execute("DELETE FROM uploads WHERE job_id NOT IN (SELECT id FROM jobs)")
        conn.execute("DELETE FROM workers WHERE last_seen < ?", (_ts(older_than),))
        return purged

    @_translate_errors
    def put_upload(self, job_id: str, data: bytes) -> None:
        self._conn().execute(
            "INSERT INTO uploads (job_id, data, stored_at) VALUES (?, ?, ?) ON CONFLICT (job_id) DO NOTHING",
            (job_id, data, _ts(datetime.now(UTC))),
        )

    @_translate_errors
    def get_upload(self, job_id: str) -> bytes | None:
        row = self._conn().execute("SELECT data FROM uploads WHERE job_id = ?", (job_id,)).fetchone()
        return None if row is None else bytes(row["data"])

    @_translate_errors
    def delete_upload(self, job_id: str) -> None:
        self._conn().execute("DELETE FROM uploads WHERE job_id = ?", (job_id,))

    @_translate_errors
    def callbacks_due(self, now: datetime, limit: int = 100) -> list[Job]:
        rows = (
            self._conn()
            .execute(
                f"SELECT {_JOB_COLUMNS} FROM jobs WHERE callback_url IS NOT NULL AND callback_state IS NULL "
                f"AND status IN ({_placeholders(_FINISHED)}) "
                "AND (callback_next_at IS NULL OR callback_next_at <= ?) "
                "AND (callback_lease_until IS NULL OR callback_lease_until <= ?) "
                "ORDER BY finished_at LIMIT ?",
                (*_FINISHED, _ts(now), _ts(now), limit),
            )
            .fetchall()
        )
        return [_job_from_row(row) for row in rows]

    @_translate_errors
    def claim_callback(self, job_id: str, now: datetime, lease_until: datetime) -> int | None:
        rows = (
            self._conn()
            .execute(
                "UPDATE jobs SET callback_attempts = callback_attempts + 1, callback_lease_until = ? "
                "WHERE id = ? AND callback_url IS NOT NULL AND callback_state IS NULL "
                f"AND status IN ({_placeholders(_FINISHED)}) "
                "AND (callback_next_at IS NULL OR callback_next_at <= ?) "
                "AND (callback_lease_until IS NULL OR callback_lease_until <= ?) "
                "RETURNING callback_attempts",
                (_ts(lease_until), job_id, *_FINISHED, _ts(now), _ts(now)),
            )
            .fetchall()
        )
        return rows[0][0] if rows else None

    @_translate_errors
    def settle_callback(
        self, job_id: str, outcome: CallbackOutcome, *, next_at: datetime | None = None, error: str | None = None
    ) -> None:
        self._conn().execute(
            "UPDATE jobs SET callback_state = ?, callback_next_at = ?, callback_lease_until = NULL, "
            "callback_error = ? WHERE id = ?",
            (None if outcome == "retry" else outcome, _ts_or_none(next_at), error, job_id),
        )

    @_translate_errors
    def create_batch(self, batch: Batch) -> Batch:
        conn = self._conn()
        params = _batch_params(batch)
        try:
            conn.execute(f"INSERT INTO batches ({_BATCH_COLUMNS}) VALUES ({_placeholders(params)})", params)
        except sqlite3.IntegrityError:
            row = conn.execute(
                f"SELECT {_BATCH_COLUMNS} FROM batches WHERE id = ? OR (client_id = ? AND idempotency_key = ?)",
                (batch.id, batch.client_id, batch.idempotency_key),
            ).fetchone()
            if row is None:
                raise
            return _batch_from_row(row)
        return batch

    @_translate_errors
    def get_batch(self, batch_id: str) -> Batch | None:
        row = self._conn().execute(f"SELECT {_BATCH_COLUMNS} FROM batches WHERE id = ?", (batch_id,)).fetchone()
        return None if row is None else _batch_from_row(row)

    @_translate_errors
    def get_many(self, job_ids: list[str]) -> list[Job]:
        conn = self._conn()
        jobs: list[Job] = []
        for start in range(0, len(job_ids), 500):  # SQLite bounds the number of parameters
            chunk = job_ids[start : start + 500]
            rows = conn.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id IN ({_placeholders(chunk)})", chunk)
            jobs.extend(_job_from_row(row) for row in rows)
        return jobs

    @_translate_errors
    def cache_get(self, key: CacheKey) -> JobResult | None:
        row = (
            self._conn()
            .execute(
                "SELECT result FROM result_cache WHERE model = ? AND model_version = ? AND image_sha256 = ?",
                (key.model, key.model_version, key.image_sha256),
            )
            .fetchone()
        )
        return None if row is None else JobResult.model_validate_json(row["result"])

    @_translate_errors
    def cache_put(self, key: CacheKey, result: JobResult) -> None:
        self._conn().execute(
            "INSERT INTO result_cache (model, model_version, image_sha256, result, stored_at) "
            "VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (model, model_version, image_sha256) "
            "DO UPDATE SET result = excluded.result, stored_at = excluded.stored_at",
            (
                key.model,
                key.model_version,
                key.image_sha256,
                result.model_dump_json(),
                _ts(datetime.now(UTC)),
            ),
        )

    @_translate_errors
    def heartbeat(self, worker_id: str, models: list[str], now: datetime) -> None:
        self._conn().execute(
            "INSERT INTO workers (worker_id, models, last_seen) VALUES (?, ?, ?) "
            "ON CONFLICT (worker_id) DO UPDATE SET models = excluded.models, last_seen = excluded.last_seen",
            (worker_id, json.dumps(list(models)), _ts(now)),
        )

    @_translate_errors
    def live_workers(self, since: datetime) -> list[WorkerInfo]:
        rows = (
            self._conn()
            .execute(
                "SELECT worker_id, models, last_seen FROM workers WHERE last_seen >= ? ORDER BY worker_id",
                (_ts(since),),
            )
            .fetchall()
        )
        return [
            WorkerInfo(
                worker_id=row["worker_id"],
                models=tuple(json.loads(row["models"])),
                last_seen=datetime.fromisoformat(row["last_seen"]),
            )
            for row in rows
        ]

    def close(self) -> None:
        """Close every connection. Idempotent; later calls raise StoreUnavailable."""
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for _, conn in connections:
            conn.close()
        self._local = threading.local()
