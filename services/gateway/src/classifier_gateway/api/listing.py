"""GET /v1/jobs: the query a request asks for, and the opaque cursor that pages through it.

The cursor is the (created_at, id) of a page's last job, base64url-encoded: the next page starts
strictly after it in the newest-first order, so a job submitted while a client pages through is
never repeated and never shifts a page (it is newer than every cursor)."""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import UTC, datetime
from typing import Annotated

from pydantic import BeforeValidator

from classifier_common.domain import JobStatus
from classifier_common.errors import InvalidInput

DEFAULT_LIMIT = 50
MAX_LIMIT = 200

_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")


def _iso_only(value: object) -> object:
    """pydantic would read a bare number as seconds since 1970; the API documents ISO 8601."""
    if isinstance(value, str) and _NUMBER.fullmatch(value):
        raise ValueError("an ISO 8601 time is expected, e.g. 2026-12-05T10:00:00Z")
    return value


# A time in a query: ISO 8601 only (the OpenAPI schema's date-time).
IsoTime = Annotated[datetime, BeforeValidator(_iso_only)]


def encode_cursor(created_at: datetime, job_id: str) -> str:
    raw = json.dumps([created_at.astimezone(UTC).isoformat(timespec="microseconds"), job_id])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        created_at, job_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        when = datetime.fromisoformat(created_at)
        if not isinstance(job_id, str) or when.tzinfo is None:
            raise ValueError(cursor)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidInput(
            "cursor is not one this service gave: follow the `next` link of the previous page",
            {"cursor": cursor[:100]},
        ) from exc
    return when, job_id


def parse_statuses(values: list[str]) -> tuple[JobStatus, ...] | None:
    """``status=failed&status=canceled`` or ``status=failed,canceled``; None for no filter."""
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    if not names:
        return None
    known = [status.value for status in JobStatus]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise InvalidInput(f"unknown status {unknown[0]!r}", {"known_statuses": known})
    return tuple(dict.fromkeys(JobStatus(name) for name in names))


def as_utc(value: datetime | None) -> datetime | None:
    """A time given without a zone is taken as UTC (what the job's created_at is in)."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)
