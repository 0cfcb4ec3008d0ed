"""The MongoDB job store: the production adapter, through pymongo.

Collections: ``jobs`` (``_id`` is the job id), ``result_cache`` (``_id`` is the cache key as a
sub-document), ``workers`` (``_id`` is the worker id) and ``batches`` (``_id`` is the batch id).
Each lifecycle write is one ``update_one``/``find_one_and_update`` whose filter carries the
allowed current statuses, so the server applies it atomically and exactly one of N racing calls
matches.

Retention is enforced by the server: a TTL index on ``jobs.finished_at`` (MongoDB only expires
documents that have the field, i.e. finished jobs), one on ``workers.last_seen`` and one on
``batches.created_at``. :meth:`MongoJobStore.purge_finished` still works explicitly.

Uploads above the claim-check threshold are kept in GridFS (bucket ``uploads``: ``uploads.files``
and ``uploads.chunks``), the file's ``_id`` being the job id. A TTL index cannot expire them:
it would delete a file's document and leave its chunks. So :meth:`MongoJobStore.purge_finished`,
which the results service runs every ``purge_interval_s``, deletes every upload whose job is no
longer there (expired by the TTL index, purged, or rolled back), and an upload outlives its job
by at most that interval.

The collections are opened with ``tz_aware=True`` codec options (whatever client is passed in),
so datetimes come back as aware UTC values; BSON keeps milliseconds, which is the precision
:func:`classifier_common.domain.utcnow` gives. Naive datetimes are stored as UTC.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from collections.abc import Collection as Models
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

import gridfs
import pymongo
from bson.codec_options import CodecOptions
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.collection import Collection
from pymongo.errors import (
    ConnectionFailure,
    DuplicateKeyError,
    OperationFailure,
    PyMongoError,
)

from classifier_common.domain import FINISHED, RETRYABLE, Batch, Job, JobError, JobResult, JobStatus
from classifier_common.errors import StoreUnavailable
from classifier_common.store.base import CacheKey, CallbackOutcome, FinishedJob, JobQuery, WorkerInfo

log = logging.getLogger(__name__)

DEFAULT_DATABASE = "classifier"
RETRY_AFTER_S = 5  # an election or a restarted server takes seconds
# A majority write waits at most this long for the secondaries (two of three members down).
WRITE_TIMEOUT_MS = 10_000

_UNFINISHED = [JobStatus.queued.value, JobStatus.running.value]
_FINISHED = sorted(status.value for status in FINISHED)
_WORKED = [JobStatus.succeeded.value, JobStatus.failed.value]  # finished by a worker
_RETRYABLE = sorted(status.value for status in RETRYABLE)
_AUTHENTICATION_FAILED = 18
_CALLBACK_PENDING = "pending"
UPLOADS_BUCKET = "uploads"
_ID_BATCH = 1000  # job ids looked up with one $in

P = ParamSpec("P")
R = TypeVar("R")


def _is_unavailable(exc: PyMongoError) -> bool:
    if isinstance(exc, ConnectionFailure):  # server selection timeout, network error, not primary
        return True
    if exc.timeout:  # an operation that ran out of time (maxTimeMS, wtimeout, timeoutMS)
        return True
    # Wrong credentials: nothing the caller can fix, but the store is no more usable than if
    # it were down, and /readyz must say so rather than answer 500.
    return isinstance(exc, OperationFailure) and exc.code == _AUTHENTICATION_FAILED


def _translate_errors(method: Callable[P, R]) -> Callable[P, R]:
    """Turn "the server cannot be used" into StoreUnavailable (a 503, never a 500)."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except PyMongoError as exc:
            if not _is_unavailable(exc):
                raise
            raise StoreUnavailable(f"job store unavailable: {exc}", retry_after=RETRY_AFTER_S) from exc

    return wrapper


def database_name(url: str) -> str:
    """The database named by the URL's path (``mongodb://host/<name>?...``), or the default."""
    path = urlsplit(url).path.lstrip("/")
    return unquote(path) if path else DEFAULT_DATABASE


def _url_has_option(url: str, option: str) -> bool:
    return any(name.lower() == option.lower() for name, _ in parse_qsl(urlsplit(url).query))


def client_options(url: str, server_selection_timeout_ms: int) -> dict[str, Any]:
    """The MongoClient options the store sets, less those the URL sets itself."""
    defaults: dict[str, Any] = {
        "serverSelectionTimeoutMS": server_selection_timeout_ms,
        "connectTimeoutMS": server_selection_timeout_ms,
        "w": "majority",
        "wTimeoutMS": WRITE_TIMEOUT_MS,
        "retryWrites": True,
        "retryReads": True,
    }
    return {option: value for option, value in defaults.items() if not _url_has_option(url, option)}


def _to_doc(job: Job) -> dict[str, Any]:
    doc = job.model_dump(mode="python", exclude={"id"})
    doc["_id"] = job.id
    doc["status"] = job.status.value
    if job.callback_url is not None:
        # Callback delivery state (classifier_common.callbacks), kept in the job's document so
        # that claiming an attempt is one atomic update; Job ignores these fields when read.
        doc.update(callback_state=_CALLBACK_PENDING, callback_attempts=0, callback_next_at=None)
        doc["callback_lease_until"] = None
    return doc


def _from_doc(doc: dict[str, Any]) -> Job:
    fields = dict(doc)
    fields["id"] = fields.pop("_id")
    return Job.model_validate(fields)


def _batch_from_doc(doc: dict[str, Any]) -> Batch:
    fields = dict(doc)
    fields["id"] = fields.pop("_id")
    return Batch.model_validate(fields)


def _cache_id(key: CacheKey) -> dict[str, str]:
    # Field order matters for matching a sub-document _id: always built here, in this order.
    return {
        "model": key.model,
        "model_version": key.model_version,
        "image_sha256": key.image_sha256,
    }


class MongoJobStore:
    """:class:`~classifier_common.store.base.JobStore` on MongoDB.

    Constructing it does not wait for the server: pymongo connects in the background, and the
    first call creates the indexes (again on a later call if the server was down). A call that
    cannot reach a server within ``server_selection_timeout_ms`` raises StoreUnavailable. A
    ``serverSelectionTimeoutMS``/``connectTimeoutMS`` given in the URL wins over the argument.

    Writes are acknowledged by a majority of a replica set's members (``w=majority``, with
    ``WRITE_TIMEOUT_MS`` after which the call fails as StoreUnavailable rather than hang while no
    majority is up), and a write that meets a failover is retried once on the new primary
    (retryable writes; reads likewise). A job accepted with 202 is then on a majority and
    survives the loss of the primary. Each of these given in the URL wins (``w=1`` for a lone
    test server, say).

    ``client`` replaces the MongoClient the store would build from ``url`` (tests pass a
    ``mongomock.MongoClient()``); the URL then only names the database. A client passed in is
    not closed by :meth:`close`.
    """

    def __init__(
        self,
        url: str,
        *,
        retention_s: int = 7 * 24 * 3600,
        server_selection_timeout_ms: int = 2000,
        client: Any = None,
    ) -> None:
        if retention_s <= 0:
            raise ValueError("retention_s must be positive")
        self.retention_s = retention_s
        self._owns_client = client is None
        if client is None:
            client = pymongo.MongoClient(url, appname="classifier", **client_options(url, server_selection_timeout_ms))
        self._client = client
        self.database = client[database_name(url)]
        aware: CodecOptions[dict[str, Any]] = CodecOptions(tz_aware=True)
        self._jobs: Collection = self.database.get_collection("jobs", codec_options=aware)
        self._cache: Collection = self.database.get_collection("result_cache", codec_options=aware)
        self._workers: Collection = self.database.get_collection("workers", codec_options=aware)
        self._batches: Collection = self.database.get_collection("batches", codec_options=aware)
        self._uploads = gridfs.GridFS(self.database, collection=UPLOADS_BUCKET)
        self._upload_files: Collection = self.database.get_collection(f"{UPLOADS_BUCKET}.files", codec_options=aware)
        self._indexes_ready = False
        self._closed = False
        self._indexes_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MongoJobStore(database={self.database.name!r})"

    # -- indexes -----------------------------------------------------------------------------

    def _ready(self) -> None:
        if self._closed:
            raise StoreUnavailable("job store is closed", retry_after=RETRY_AFTER_S)
        if self._indexes_ready:
            return
        with self._indexes_lock:
            if not self._indexes_ready:
                self._create_indexes()
                self._indexes_ready = True

    def _create_indexes(self) -> None:
        self._jobs.create_index([("status", ASCENDING)], name="status")
        self._jobs.create_index([("created_at", ASCENDING)], name="created_at")
        # A queued job's place in the queue (queued_ahead): the queued jobs in creation order.
        self._jobs.create_index(
            [("created_at", ASCENDING), ("_id", ASCENDING), ("model", ASCENDING)],
            name="queue_order",
            partialFilterExpression={"status": JobStatus.queued.value},
        )
        # Partial, not sparse: every document has the field, most with null, and a sparse
        # index would still index (and so collide on) those nulls. Unique per client: the
        # index of older versions, unique over every client, goes.
        if "idempotency_key" in self._jobs.index_information():
            try:
                self._jobs.drop_index("idempotency_key")
            except OperationFailure:
                pass  # another replica dropped it first
        self._jobs.create_index(
            [("client_id", ASCENDING), ("idempotency_key", ASCENDING)],
            name="client_idempotency_key",
            unique=True,
            partialFilterExpression={"idempotency_key": {"$type": "string"}},
        )
        self._jobs.create_index(
            [("callback_next_at", ASCENDING)],
            name="callback_pending",
            partialFilterExpression={"callback_state": _CALLBACK_PENDING},
        )
        self._jobs.create_index(
            [("batch_id", ASCENDING)], name="batch_id", partialFilterExpression={"batch_id": {"$type": "string"}}
        )
        self._batches.create_index(
            [("client_id", ASCENDING), ("idempotency_key", ASCENDING)],
            name="client_idempotency_key",
            unique=True,
            partialFilterExpression={"idempotency_key": {"$type": "string"}},
        )
        # Listing newest first, all jobs or one client's, paged by (created_at, _id); and the
        # count of one client's queued jobs.
        self._jobs.create_index([("created_at", DESCENDING), ("_id", DESCENDING)], name="created_at_id")
        self._jobs.create_index(
            [("client_id", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)], name="client_created_at_id"
        )
        self._jobs.create_index([("client_id", ASCENDING), ("status", ASCENDING)], name="client_status")
        # Also what finished_since reads: a range of finished_at, newest first.
        self._ensure_ttl_index(self._jobs, "finished_at")
        self._ensure_ttl_index(self._workers, "last_seen")
        self._ensure_ttl_index(self._batches, "created_at")
        log.info("job store indexes ready in database %s", self.database.name)

    def _ensure_ttl_index(self, collection: Collection, field: str) -> None:
        name = f"{field}_ttl"
        current = collection.index_information().get(name)
        if current is not None and current.get("expireAfterSeconds") != self.retention_s:
            # The retention setting changed. Dropping and rebuilding the index works on every
            # server version (and on mongomock), unlike collMod; the index is small.
            log.info("changing %s retention to %ds", collection.name, self.retention_s)
            try:
                collection.drop_index(name)
            except OperationFailure:
                pass  # another replica dropped it first
        collection.create_index([(field, ASCENDING)], name=name, expireAfterSeconds=self.retention_s)

    # -- JobStore ----------------------------------------------------------------------------

    @_translate_errors
    def ping(self) -> None:
        self._ready()
        self._client.admin.command("ping")

    @_translate_errors
    def create(self, job: Job) -> Job:
        self._ready()
        try:
            self._jobs.insert_one(_to_doc(job))
        except DuplicateKeyError:
            if job.idempotency_key is None:
                raise  # a duplicate job id is a bug
            existing = self._jobs.find_one({"client_id": job.client_id, "idempotency_key": job.idempotency_key})
            if existing is None:
                raise
            return _from_doc(existing)
        return job

    @_translate_errors
    def get(self, job_id: str) -> Job | None:
        self._ready()
        doc = self._jobs.find_one({"_id": job_id})
        return None if doc is None else _from_doc(doc)

    @_translate_errors
    def list_jobs(self, query: JobQuery) -> list[Job]:
        self._ready()
        where: dict[str, Any] = {}
        if query.client_id is not None:
            where["client_id"] = query.client_id
        if query.statuses is not None:
            where["status"] = {"$in": [status.value for status in query.statuses]}
        if query.model is not None:
            where["model"] = query.model
        created: dict[str, datetime] = {}
        if query.created_after is not None:
            created["$gt"] = query.created_after
        if query.created_before is not None:
            created["$lt"] = query.created_before
        if created:
            where["created_at"] = created
        if query.before is not None:
            created_at, job_id = query.before
            where["$or"] = [{"created_at": {"$lt": created_at}}, {"created_at": created_at, "_id": {"$lt": job_id}}]
        cursor = self._jobs.find(where).sort([("created_at", DESCENDING), ("_id", DESCENDING)]).limit(query.limit)
        return [_from_doc(doc) for doc in cursor]

    @_translate_errors
    def count_queued(self, client_id: str) -> int:
        self._ready()
        return self._jobs.count_documents({"client_id": client_id, "status": JobStatus.queued.value})

    @_translate_errors
    def claim_retry(self, job_id: str, retry_id: str) -> bool:
        self._ready()
        outcome = self._jobs.update_one(
            {"_id": job_id, "retried_by": None, "status": {"$in": _RETRYABLE}}, {"$set": {"retried_by": retry_id}}
        )
        return outcome.modified_count == 1

    @_translate_errors
    def release_retry(self, job_id: str, retry_id: str) -> None:
        self._ready()
        self._jobs.update_one({"_id": job_id, "retried_by": retry_id}, {"$set": {"retried_by": None}})

    @_translate_errors
    def finished_among(self, job_ids: list[str]) -> set[str]:
        self._ready()
        unfinished = self._jobs.find({"_id": {"$in": list(job_ids)}, "status": {"$in": _UNFINISHED}}, {"_id": 1})
        return set(job_ids) - {doc["_id"] for doc in unfinished}

    def change_counter(self) -> int | None:
        return None  # no cheap way to tell; a change stream needs a replica set

    @_translate_errors
    def delete(self, job_id: str) -> None:
        self._ready()
        self._jobs.delete_one({"_id": job_id})
        self._uploads.delete(job_id)  # if this fails, the next purge deletes the upload

    @_translate_errors
    def start(self, job_id: str, now: datetime) -> Job | None:
        self._ready()
        doc = self._jobs.find_one_and_update(
            {"_id": job_id, "status": {"$in": _UNFINISHED}},
            {
                "$set": {"status": JobStatus.running.value, "started_at": now},
                "$inc": {"attempts": 1},
            },
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            # No such job, or a finished one, which never changes again: return it as it is.
            doc = self._jobs.find_one({"_id": job_id})
        return None if doc is None else _from_doc(doc)

    @_translate_errors
    def finish(self, job_id: str, result: JobResult, now: datetime) -> bool:
        self._ready()
        outcome = self._jobs.update_one(
            {"_id": job_id, "status": {"$in": _UNFINISHED}},
            {
                "$set": {
                    "status": JobStatus.succeeded.value,
                    "result": result.model_dump(),
                    "finished_at": now,
                }
            },
        )
        return outcome.modified_count == 1

    @_translate_errors
    def fail(self, job_id: str, error: JobError, now: datetime) -> bool:
        self._ready()
        outcome = self._jobs.update_one(
            {"_id": job_id, "status": {"$in": _UNFINISHED}},
            {
                "$set": {
                    "status": JobStatus.failed.value,
                    "error": error.model_dump(),
                    "finished_at": now,
                }
            },
        )
        return outcome.modified_count == 1

    @_translate_errors
    def cancel(self, job_id: str, now: datetime) -> Job | None:
        self._ready()
        doc = self._jobs.find_one_and_update(
            {"_id": job_id, "status": JobStatus.queued.value},
            {"$set": {"status": JobStatus.canceled.value, "finished_at": now}},
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            doc = self._jobs.find_one({"_id": job_id})
        return None if doc is None else _from_doc(doc)

    @_translate_errors
    def unfinished(self, limit: int = 10_000) -> list[Job]:
        self._ready()
        cursor = (
            self._jobs.find({"status": {"$in": _UNFINISHED}})
            .sort([("created_at", ASCENDING), ("_id", ASCENDING)])
            .limit(limit)
        )
        return [_from_doc(doc) for doc in cursor]

    @_translate_errors
    def count_by_status(self) -> dict[str, int]:
        self._ready()
        counts = {status.value: 0 for status in JobStatus}
        for row in self._jobs.aggregate([{"$group": {"_id": "$status", "n": {"$sum": 1}}}]):
            counts[row["_id"]] = row["n"]
        return counts

    @_translate_errors
    def queued_ahead(self, job: Job, models: Models[str] | None = None) -> int:
        self._ready()
        query: dict[str, Any] = {
            "status": JobStatus.queued.value,
            "$or": [
                {"created_at": {"$lt": job.created_at}},
                {"created_at": job.created_at, "_id": {"$lt": job.id}},
            ],
        }
        if models is not None:
            query["model"] = {"$in": list(models)}
        return int(self._jobs.count_documents(query))

    @_translate_errors
    def finished_since(
        self, since: datetime, models: Models[str] | None = None, limit: int = 10_000
    ) -> list[FinishedJob]:
        self._ready()
        query: dict[str, Any] = {"finished_at": {"$gte": since}, "status": {"$in": _WORKED}}
        if models is not None:
            query["model"] = {"$in": list(models)}
        fields = {"model": 1, "status": 1, "error.code": 1, "created_at": 1, "started_at": 1, "finished_at": 1}
        cursor = self._jobs.find(query, fields).sort("finished_at", -1).limit(limit)
        return [
            FinishedJob(
                model=doc["model"],
                status=JobStatus(doc["status"]),
                error_code=(doc.get("error") or {}).get("code"),
                created_at=doc["created_at"],
                started_at=doc.get("started_at"),
                finished_at=doc["finished_at"],
            )
            for doc in cursor
        ]

    @_translate_errors
    def unfinished_by_model(self) -> dict[str, dict[str, int]]:
        self._ready()
        counts: dict[str, dict[str, int]] = {}
        pipeline: list[dict[str, Any]] = [
            {"$match": {"status": {"$in": _UNFINISHED}}},
            {"$group": {"_id": {"model": "$model", "status": "$status"}, "n": {"$sum": 1}}},
        ]
        for row in self._jobs.aggregate(pipeline):
            counts.setdefault(row["_id"]["model"], dict.fromkeys(_UNFINISHED, 0))[row["_id"]["status"]] = row["n"]
        return counts

    @_translate_errors
    def purge_finished(self, older_than: datetime) -> int:
        self._ready()
        expired = {"status": {"$in": _FINISHED}, "finished_at": {"$lt": older_than}}
        purged = 0
        while ids := [doc["_id"] for doc in self._jobs.find(expired, {"_id": 1}).limit(_ID_BATCH)]:
            purged += self._jobs.delete_many({"_id": {"$in": ids}, **expired}).deleted_count
            self._delete_uploads(ids)
        self._purge_orphan_uploads(older_than)
        self._batches.delete_many({"created_at": {"$lt": older_than}})
        return purged

    def _purge_orphan_uploads(self, older_than: datetime) -> None:
        """Delete the uploads whose job is gone (expired by the TTL index, or rolled back while
        the upload's delete failed). A job finishes after its upload is stored, so only uploads
        stored before ``older_than`` can have lost their job to retention: only those are read."""
        candidates = [doc["_id"] for doc in self._upload_files.find({"uploadDate": {"$lt": older_than}}, {"_id": 1})]
        for start in range(0, len(candidates), _ID_BATCH):
            batch = candidates[start : start + _ID_BATCH]
            alive = {doc["_id"] for doc in self._jobs.find({"_id": {"$in": batch}}, {"_id": 1})}
            self._delete_uploads([job_id for job_id in batch if job_id not in alive])

    def _delete_uploads(self, job_ids: list[str]) -> None:
        # As GridFS.delete does it for one file: the file's document, then its chunks.
        if job_ids:
            self._upload_files.delete_many({"_id": {"$in": job_ids}})
            self.database[f"{UPLOADS_BUCKET}.chunks"].delete_many({"files_id": {"$in": job_ids}})

    @_translate_errors
    def put_upload(self, job_id: str, data: bytes) -> None:
        self._ready()
        try:
            # GridFS writes the chunks, then the file's document: a file that exists is complete.
            self._uploads.put(data, _id=job_id, filename=job_id)
        except gridfs.errors.FileExists:
            pass  # stored before (a replayed submission): a job's upload never changes

    @_translate_errors
    def get_upload(self, job_id: str) -> bytes | None:
        self._ready()
        try:
            return self._uploads.get(job_id).read()
        except gridfs.errors.NoFile:
            return None

    @_translate_errors
    def delete_upload(self, job_id: str) -> None:
        self._ready()
        self._uploads.delete(job_id)

    @staticmethod
    def _callback_due_filter(now: datetime) -> dict[str, Any]:
        return {
            "callback_state": _CALLBACK_PENDING,
            "status": {"$in": _FINISHED},
            "$and": [
                {"$or": [{"callback_next_at": None}, {"callback_next_at": {"$lte": now}}]},
                {"$or": [{"callback_lease_until": None}, {"callback_lease_until": {"$lte": now}}]},
            ],
        }

    @_translate_errors
    def callbacks_due(self, now: datetime, limit: int = 100) -> list[Job]:
        self._ready()
        cursor = self._jobs.find(self._callback_due_filter(now)).sort("finished_at", ASCENDING).limit(limit)
        return [_from_doc(doc) for doc in cursor]

    @_translate_errors
    def claim_callback(self, job_id: str, now: datetime, lease_until: datetime) -> int | None:
        self._ready()
        doc = self._jobs.find_one_and_update(
            {"_id": job_id, **self._callback_due_filter(now)},
            {"$inc": {"callback_attempts": 1}, "$set": {"callback_lease_until": lease_until}},
            projection={"callback_attempts": 1},
            return_document=ReturnDocument.AFTER,
        )
        return None if doc is None else doc["callback_attempts"]

    @_translate_errors
    def settle_callback(
        self, job_id: str, outcome: CallbackOutcome, *, next_at: datetime | None = None, error: str | None = None
    ) -> None:
        self._ready()
        state = _CALLBACK_PENDING if outcome == "retry" else outcome
        self._jobs.update_one(
            {"_id": job_id},
            {
                "$set": {
                    "callback_state": state,
                    "callback_next_at": next_at,
                    "callback_lease_until": None,
                    "callback_error": error,
                }
            },
        )

    @_translate_errors
    def create_batch(self, batch: Batch) -> Batch:
        self._ready()
        doc = batch.model_dump(mode="python", exclude={"id"})
        doc["_id"] = batch.id
        try:
            self._batches.insert_one(doc)
        except DuplicateKeyError:
            match: list[dict[str, Any]] = [{"_id": batch.id}]
            if batch.idempotency_key is not None:
                match.append({"client_id": batch.client_id, "idempotency_key": batch.idempotency_key})
            existing = self._batches.find_one({"$or": match})
            if existing is None:
                raise
            return _batch_from_doc(existing)
        return batch

    @_translate_errors
    def get_batch(self, batch_id: str) -> Batch | None:
        self._ready()
        doc = self._batches.find_one({"_id": batch_id})
        return None if doc is None else _batch_from_doc(doc)

    @_translate_errors
    def get_many(self, job_ids: list[str]) -> list[Job]:
        self._ready()
        return [_from_doc(doc) for doc in self._jobs.find({"_id": {"$in": list(job_ids)}})]

    @_translate_errors
    def cache_get(self, key: CacheKey) -> JobResult | None:
        self._ready()
        doc = self._cache.find_one({"_id": _cache_id(key)})
        return None if doc is None else JobResult.model_validate(doc["result"])

    @_translate_errors
    def cache_put(self, key: CacheKey, result: JobResult) -> None:
        self._ready()
        try:
            self._cache.update_one(
                {"_id": _cache_id(key)},
                {
                    "$set": {
                        "result": result.model_dump(),
                        "stored_at": datetime.now(UTC),
                    }
                },
                upsert=True,
            )
        except DuplicateKeyError:
            pass  # two workers cached the same classification at once: either copy will do

    @_translate_errors
    def heartbeat(self, worker_id: str, models: list[str], now: datetime) -> None:
        self._ready()
        self._workers.update_one(
            {"_id": worker_id},
            {"$set": {"models": list(models), "last_seen": now}},
            upsert=True,
        )

    @_translate_errors
    def live_workers(self, since: datetime) -> list[WorkerInfo]:
        self._ready()
        cursor = self._workers.find({"last_seen": {"$gte": since}}).sort("_id", ASCENDING)
        return [
            WorkerInfo(
                worker_id=doc["_id"],
                models=tuple(doc["models"]),
                last_seen=doc["last_seen"],
            )
            for doc in cursor
        ]

    def close(self) -> None:
        """Idempotent; later calls raise StoreUnavailable."""
        self._closed = True
        if self._owns_client:
            self._client.close()
