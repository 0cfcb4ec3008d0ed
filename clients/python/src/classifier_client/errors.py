"""What can go wrong, as exceptions. Every error the API answers carries its error body::

{"error": {"code": "...", "message": "...", "details": ...}, "request_id": "..."}
"""

from __future__ import annotations

from typing import Any

import httpx

from classifier_client.bodies import Job


class ClassifierError(Exception):
    """Base of every error this client raises."""


class Unreachable(ClassifierError):
    """The server could not be reached (refused, timed out, name not found)."""

    def __init__(self, base_url: str, cause: Exception):
        super().__init__(f"cannot reach {base_url} ({cause or type(cause).__name__})")
        self.base_url = base_url
        self.cause = cause


class ApiError(ClassifierError):
    """The API answered with an error. ``body`` is the error body as sent (None if the answer was
    not JSON, e.g. from a proxy in front of the API)."""

    def __init__(self, status: int, body: dict[str, Any] | None, reason: str = "", retry_after: float | None = None):
        error = body.get("error") if isinstance(body, dict) else None
        error = error if isinstance(error, dict) else {}
        self.status = status
        self.body = body
        self.code: str = error.get("code") or f"http_{status}"
        self.message: str = error.get("message") or reason or f"HTTP {status}"
        self.details: Any = error.get("details")
        self.request_id: str | None = body.get("request_id") if isinstance(body, dict) else None
        self.retry_after = retry_after
        super().__init__(f"{self.message} (HTTP {status} {self.code})")


class BadRequest(ApiError):
    """4xx: the request was refused (see :attr:`code`); sending it again will not help."""


class Unauthorized(BadRequest):
    """401/403: a missing or wrong API key."""


class NotFound(BadRequest):
    """404: no such job, model or image."""


class Conflict(BadRequest):
    """409: e.g. canceling a job that is no longer queued."""


class InvalidInput(BadRequest):
    """413, 415, 422: the body is too large, not an image, or not valid."""


class TooManyRequests(ApiError):
    """429: the queue is full; :attr:`retry_after` says when to come back."""


class ServerError(ApiError):
    """5xx: the server failed or a dependency is down (503 carries :attr:`retry_after`)."""


class WaitTimeout(ClassifierError):
    """``wait`` gave up; the job goes on. :attr:`job` is the last state seen."""

    def __init__(self, job: Job, timeout: float):
        super().__init__(f"job {job['id']} is still {job['status']} after {timeout:g} s")
        self.job = job
        self.timeout = timeout


_BY_STATUS: dict[int, type[ApiError]] = {
    401: Unauthorized,
    403: Unauthorized,
    404: NotFound,
    409: Conflict,
    413: InvalidInput,
    415: InvalidInput,
    422: InvalidInput,
    429: TooManyRequests,
}


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After in seconds (the API sends seconds; an HTTP date is not expected and ignored)."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def error_for(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        body = None
    status = response.status_code
    kind = _BY_STATUS.get(status) or (ServerError if status >= 500 else BadRequest)
    return kind(
        status,
        body if isinstance(body, dict) else None,
        response.reason_phrase,
        retry_after_seconds(response.headers.get("retry-after")),
    )
