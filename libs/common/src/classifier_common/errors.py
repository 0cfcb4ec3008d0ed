"""Domain exceptions. Each carries its HTTP status and a stable code; the mapping to the one
error body (``{"error": {"code", "message", "details"}, "request_id"}``, :func:`error_body`) is
registered once in :mod:`classifier_common.web`.
"""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Any


def error_body(code: str, message: str, details: Any, request_id: str | None) -> dict[str, Any]:
    """The one error body of every 4xx and 5xx answer of every service, the worker's port too."""
    return {"error": {"code": code, "message": message, "details": details}, "request_id": request_id}


def status_code_name(status: int) -> str:
    """The error code of an answer with no domain error behind it: the status's phrase
    (404 ``not_found``, 405 ``method_not_allowed``, 414 ``request_uri_too_long``)."""
    return re.sub(r"[^a-z0-9]+", "_", HTTPStatus(status).phrase.lower())


def head_too_slow(timeout_s: float) -> str:
    """The message of a 408 for a request head that missed its deadline (every HTTP port)."""
    return f"the request head was not received within {timeout_s:g} s"


def head_too_large(max_bytes: int) -> str:
    """The message of a 431 for a request head over its bound (every HTTP port)."""
    return f"the request head is larger than {max_bytes} bytes"


class ClassifierError(Exception):
    status_code = 500
    code = "internal_error"

    def __init__(self, message: str, details: Any = None, *, retry_after: int | None = None):
        super().__init__(message)
        self.message = message
        self.details = details
        self.retry_after = retry_after


class InvalidInput(ClassifierError):
    status_code = 422
    code = "invalid_input"


class UnknownModel(InvalidInput):
    code = "unknown_model"


class UnknownImage(InvalidInput):
    code = "unknown_image"


class ImageRejected(InvalidInput):
    """The bytes are an image format we know but cannot accept (too many pixels, truncated)."""

    code = "invalid_image"


class IdempotencyKeyReused(InvalidInput):
    """An Idempotency-Key this client used before, sent with a different request (the IETF
    Idempotency-Key draft answers it with 422)."""

    code = "idempotency_key_reused"


class TooManyItems(InvalidInput):
    """A batch with more items than the server takes in one request (or none at all)."""

    code = "too_many_items"


class BatchRefused(InvalidInput):
    """Every item of a batch was refused: nothing was queued, so there is no batch. The details
    list each item's own reason."""

    code = "batch_refused"


class NotAnImage(ClassifierError):
    status_code = 415
    code = "unsupported_media_type"


class PayloadTooLarge(ClassifierError):
    status_code = 413
    code = "payload_too_large"


class Unauthorized(ClassifierError):
    status_code = 401
    code = "unauthorized"


class NotFound(ClassifierError):
    status_code = 404
    code = "not_found"


class Conflict(ClassifierError):
    status_code = 409
    code = "conflict"


class TooManyQueued(ClassifierError):
    """This API key already has its bound of queued jobs (429): one client cannot fill the queue
    for everyone."""

    status_code = 429
    code = "too_many_queued"


class NotRetryable(Conflict):
    """A retry of a job that is queued, running or succeeded: only a failed or canceled job is retried (409)."""

    code = "not_retryable"


class AlreadyRetried(Conflict):
    """The job was retried before; its retry is named in ``details.retried_by`` (409)."""

    code = "already_retried"


class UploadNotKept(Conflict):
    """A retry of an uploaded image: the bytes were classified, never stored (409)."""

    code = "upload_not_kept"


class QueueFull(ClassifierError):
    """The bounded backlog is full: the client should retry later (429)."""

    status_code = 429
    code = "queue_full"


def queue_full(pool: str, max_length: int, retry_after: int) -> QueueFull:
    """A pool's queue is full: only that pool's models are refused, the others' queues are apart."""
    return QueueFull(
        f"the job queue of pool {pool!r} is full ({max_length} waiting); retry later",
        {"pool": pool, "max_length": max_length},
        retry_after=retry_after,
    )


class ModelNotServed(InvalidInput):
    """The model exists but no worker pool serves it (CLASSIFIER_POOLS): refused before anything is stored."""

    code = "model_not_served"


class Unavailable(ClassifierError):
    """A dependency (broker or store) cannot be reached right now (503)."""

    status_code = 503
    code = "unavailable"


class BrokerUnavailable(Unavailable):
    code = "broker_unavailable"


class StoreUnavailable(Unavailable):
    code = "store_unavailable"


class PoisonMessage(Exception):
    """A queue message that can never be processed (not JSON, unknown schema version)."""
