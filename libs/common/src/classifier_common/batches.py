"""A batch as the API shows it: its items joined with their jobs' current state, the counts per
status, and the same items as CSV or JSON Lines rows for download.

The gateway answers the POST with it (every accepted job just queued) and the results service
answers the GET (every job as it is now)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable
from typing import Any

from classifier_common.domain import Batch, Job, JobStatus, batch_url, status_url
from classifier_common.random_ids import uuid4_hex

REFUSED = "refused"
# An accepted item whose job is no longer kept (finished longer ago than the retention).
EXPIRED = "expired"
ITEM_STATUSES = (*(status.value for status in JobStatus), REFUSED, EXPIRED)

CSV_COLUMNS = (
    "index",
    "image",
    "source",
    "job_id",
    "status",
    "label",
    "score",
    "model_version",
    "cached",
    "error_code",
    "error_message",
)


def batch_id_for(client_id: str, idempotency_key: str | None) -> str:
    """A new id, or with an Idempotency-Key one derived from it: a retried request names the
    same batch, and its items the same jobs."""
    if idempotency_key is None:
        return uuid4_hex()
    return hashlib.sha256(f"{client_id}\0{idempotency_key}".encode()).hexdigest()[:32]


def item_idempotency_key(batch_id: str, index: int) -> str:
    return f"batch:{batch_id}:{index}"


def batch_view(batch: Batch, jobs: Iterable[Job]) -> dict[str, Any]:
    by_id = {job.id: job for job in jobs}
    counts = dict.fromkeys(ITEM_STATUSES, 0)
    items = []
    for item in batch.items:
        job = by_id.get(item.job_id) if item.job_id is not None else None
        if item.job_id is None:
            status = REFUSED
        elif job is None:
            status = EXPIRED
        else:
            status = job.status.value
        counts[status] += 1
        view: dict[str, Any] = {
            "index": item.index,
            "image": item.image,
            "source": item.source,
            "job_id": item.job_id,
            "status": status,
            "status_url": None if item.job_id is None else status_url(item.job_id),
            "result": None,
            "error": None if item.error is None else item.error.model_dump(mode="json"),
        }
        if job is not None:
            view["result"] = None if job.result is None else job.result.model_dump(mode="json")
            if job.error is not None:
                view["error"] = job.error.model_dump(mode="json")
        items.append(view)
    accepted = sum(1 for item in batch.items if item.job_id is not None)
    unfinished = counts[JobStatus.queued.value] + counts[JobStatus.running.value]
    return {
        "id": batch.id,
        "status": "in_progress" if unfinished else "done",
        "model": batch.model,
        "created_at": batch.model_dump(mode="json", include={"created_at"})["created_at"],
        "status_url": batch_url(batch.id),
        "total": len(batch.items),
        "accepted": accepted,
        "refused": len(batch.items) - accepted,
        "counts": counts,
        "items": items,
    }


def _row(item: dict[str, Any]) -> dict[str, Any]:
    result = item["result"] or {}
    top = (result.get("predictions") or [{}])[0]
    error = item["error"] or {}
    return {
        "index": item["index"],
        "image": item["image"],
        "source": item["source"],
        "job_id": item["job_id"] or "",
        "status": item["status"],
        "label": top.get("label", ""),
        "score": top.get("score", ""),
        "model_version": result.get("model_version", ""),
        "cached": result.get("cached", ""),
        "error_code": error.get("code", ""),
        "error_message": error.get("message", ""),
    }


def _cell(value: object) -> object:
    # A file name is the client's text: one that starts like a formula must not run as one when
    # the download is opened in a spreadsheet (OWASP "CSV injection").
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return f"'{value}"
    return value


def as_csv(view: dict[str, Any]) -> str:
    """One row per item with its top prediction (a spreadsheet's view; JSON Lines has all five)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for item in view["items"]:
        writer.writerow({name: _cell(value) for name, value in _row(item).items()})
    return out.getvalue()


def as_json_lines(view: dict[str, Any]) -> str:
    """One JSON object per item, as in the JSON answer's ``items``."""
    return "".join(json.dumps(item, separators=(",", ":")) + "\n" for item in view["items"])
