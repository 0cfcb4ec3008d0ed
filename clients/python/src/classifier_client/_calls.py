"""What the sync and async clients share: how each API call is built, how an answer is read,
and when a failed call is tried again."""

from __future__ import annotations

import mimetypes
import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import httpx

from classifier_client.bodies import Batch, Job
from classifier_client.errors import ApiError, ClassifierError, Unreachable, error_for

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_MODEL = "efficientnet_lite0"
MAX_WAIT_S = 30.0  # the longest long-poll the API holds a request
# Answers that say "not now" rather than "no": the request was not acted on.
RETRY_STATUSES = frozenset({429, 502, 503, 504})

FileInput = str | os.PathLike[str] | bytes | IO[bytes]


@dataclass(frozen=True)
class Retry:
    """How a call that failed for a passing reason is tried again: after a refused or lost
    connection, and after 429/502/503/504, waiting what the answer's Retry-After says, else
    ``backoff_s`` doubling. Submissions carry an Idempotency-Key, so a retried submission that
    did reach the server makes no second job."""

    attempts: int = 3  # tries after the first; 0 never retries
    backoff_s: float = 0.5
    max_delay_s: float = 30.0  # a longer Retry-After is not waited for: the error is raised

    def delay(self, attempt: int, error: ClassifierError) -> float | None:
        """Seconds before try ``attempt + 1`` (``attempt`` counts from 0), or None: raise."""
        if attempt >= self.attempts:
            return None
        if isinstance(error, ApiError):
            if error.status not in RETRY_STATUSES:
                return None
            if error.retry_after is not None:
                return error.retry_after if error.retry_after <= self.max_delay_s else None
        elif not isinstance(error, Unreachable):
            return None
        return min(self.backoff_s * 2**attempt, self.max_delay_s)


@dataclass
class Call:
    method: str
    path: str
    params: dict[str, Any] | None = None
    json: Any = None
    data: dict[str, str | list[str]] | None = None
    files: dict[str, tuple[str, bytes, str]] | list[tuple[str, tuple[str, bytes, str]]] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float | None = None  # None: the client's

    def send_kwargs(self, default_timeout: float) -> dict[str, Any]:
        timeout = self.timeout if self.timeout is not None else default_timeout
        return {
            "params": self.params,
            "json": self.json,
            "data": self.data,
            "files": self.files,
            "headers": self.headers,
            "timeout": httpx.Timeout(timeout, connect=min(timeout, 10.0)),
        }


def headers(api_key: str | None, user_agent: str) -> dict[str, str]:
    out = {"accept": "application/json", "user-agent": user_agent}
    if api_key:
        out["x-api-key"] = api_key
    return out


def read_answer(response: httpx.Response) -> Any:
    if response.is_error:
        raise error_for(response)
    return response.json()


def job_id_of(job: str | Job | Batch) -> str:
    """A job (or batch) id from a job, its id, or its status URL (``.../v1/jobs/ID``)."""
    if isinstance(job, dict):
        return job["id"]
    return job.rstrip("/").rsplit("/", 1)[-1]


def _read_file(file: FileInput, filename: str | None) -> tuple[str, bytes]:
    if isinstance(file, bytes):
        return filename or "upload", file
    if isinstance(file, str | os.PathLike):
        path = Path(file)
        return filename or path.name, path.read_bytes()
    name = filename or Path(getattr(file, "name", "upload") or "upload").name
    return name, file.read()


def submit_call(
    model: str,
    image: str | None,
    file: FileInput | None,
    filename: str | None,
    callback_url: str | None,
    idempotency_key: str | None,
    wait: float = 0,
) -> Call:
    """POST /v1/jobs; with ``wait``, the answer waits that long for the job to finish."""
    if (image is None) == (file is None):
        raise TypeError("submit takes one of image= (a gallery image name) or file= (an image to upload)")
    # Retries of this call send the same key: the server makes at most one job of them.
    call_headers = {"idempotency-key": idempotency_key or uuid.uuid4().hex}
    params = {"wait": round(wait, 1)} if wait else None
    if image is not None:
        body: dict[str, Any] = {"model": model, "image": image}
        if callback_url is not None:
            body["callback_url"] = callback_url
        return Call(
            "POST", "/v1/jobs", params=params, json=body, headers=call_headers, timeout=(wait + 30.0) if wait else None
        )
    assert file is not None
    name, content = _read_file(file, filename)
    media_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    data: dict[str, str | list[str]] = {"model": model}
    if callback_url is not None:
        data["callback_url"] = callback_url
    return Call(
        "POST",
        "/v1/jobs",
        params=params,
        data=data,
        files={"file": (name, content, media_type)},
        headers=call_headers,
        timeout=120.0 + wait,
    )


def batch_call(
    model: str,
    images: list[str],
    files: list[FileInput],
    filenames: list[str] | None,
    callback_url: str | None,
    idempotency_key: str | None,
) -> Call:
    """POST /v1/batches: every file as a `file` part and every gallery name as an `image` field."""
    if not images and not files:
        raise TypeError("submit_batch takes at least one of images= or files=")
    call_headers = {"idempotency-key": idempotency_key or uuid.uuid4().hex}
    data: dict[str, str | list[str]] = {"model": model}
    if images:
        data["image"] = list(images)
    if callback_url is not None:
        data["callback_url"] = callback_url
    parts = []
    for i, file in enumerate(files):
        name, content = _read_file(file, filenames[i] if filenames else None)
        parts.append(("file", (name, content, mimetypes.guess_type(name)[0] or "application/octet-stream")))
    if not parts:  # gallery names only: JSON
        body: dict[str, Any] = {"model": model, "images": list(images)}
        if callback_url is not None:
            body["callback_url"] = callback_url
        return Call("POST", "/v1/batches", json=body, headers=call_headers)
    return Call("POST", "/v1/batches", data=data, files=parts, headers=call_headers, timeout=300.0)


def get_call(job_id: str, wait: float) -> Call:
    params = {"wait": round(wait, 1)} if wait else None
    return Call("GET", f"/v1/jobs/{job_id}", params=params, timeout=(wait + 30.0) if wait else None)


def stats_call(window_s: int | None) -> Call:
    return Call("GET", "/v1/stats", params=None if window_s is None else {"window_s": window_s})


def list_call(
    status: str | Iterable[str] | None,
    model: str | None,
    created_after: datetime | str | None,
    created_before: datetime | str | None,
    limit: int | None,
) -> Call:
    """The first page of GET /v1/jobs; later pages follow each page's ``next``."""
    params: dict[str, Any] = {}
    if status is not None:
        params["status"] = status if isinstance(status, str) else ",".join(status)
    if model is not None:
        params["model"] = model
    for name, value in (("created_after", created_after), ("created_before", created_before)):
        if value is not None:
            params[name] = value.isoformat() if isinstance(value, datetime) else value
    if limit is not None:
        params["limit"] = limit
    return Call("GET", "/v1/jobs", params=params or None)


def next_call(next_url: str) -> Call:
    return Call("GET", next_url)


def retry_call(job_id: str, idempotency_key: str | None) -> Call:
    # Retries of this call send the same key: the server makes at most one new job of them.
    call_headers = {"idempotency-key": idempotency_key or uuid.uuid4().hex}
    return Call("POST", f"/v1/jobs/{job_id}/retry", headers=call_headers)
