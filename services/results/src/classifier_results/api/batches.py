"""GET /v1/batches/{id}: a batch's progress (counts per status) and every item's job, with its
result once finished; as JSON, or for download as CSV or JSON Lines (``?format=`` or Accept)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, Response

from classifier_common.batches import as_csv, as_json_lines, batch_view
from classifier_common.blocking import in_thread
from classifier_common.deps import ClientIdDep, StoreDep
from classifier_common.errors import InvalidInput, NotFound
from classifier_common.web import ERROR_RESPONSE_SCHEMA

router = APIRouter(prefix="/v1/batches", tags=["batches"])

BATCH_ID = re.compile(r"^[0-9a-f]{32}$")
MEDIA_TYPES = {"json": "application/json", "csv": "text/csv", "jsonl": "application/x-ndjson"}
Format = Literal["json", "csv", "jsonl"]
FormatQuery = Annotated[
    Format | None,
    Query(description="`csv` or `jsonl` for a download (as does `Accept: text/csv` or `application/x-ndjson`)"),
]


def _format(request: Request, given: Format | None) -> Format:
    """``?format=`` wins; else the first of CSV or JSON Lines the Accept header names; else JSON."""
    if given is not None:
        return given
    for part in request.headers.get("accept", "").split(","):
        media_type = part.split(";")[0].strip().lower()
        if media_type == "text/csv":
            return "csv"
        if media_type in ("application/x-ndjson", "application/jsonl"):
            return "jsonl"
        if media_type in ("application/json", "*/*"):
            return "json"
    return "json"


@router.get(
    "/{batch_id}",
    summary="A batch: progress, and every item's result",
    responses={
        200: {"description": "The batch", "content": {"application/json": {}}},
        404: ERROR_RESPONSE_SCHEMA,
        422: ERROR_RESPONSE_SCHEMA,
        503: ERROR_RESPONSE_SCHEMA,
    },
)
async def get_batch(
    request: Request,
    store: StoreDep,
    client_id: ClientIdDep,
    batch_id: str = Path(max_length=100, json_schema_extra={"pattern": BATCH_ID.pattern}),
    format: FormatQuery = None,  # noqa: A002 - the query parameter's name
) -> Response:
    if not BATCH_ID.fullmatch(batch_id):
        raise InvalidInput("a batch id is 32 lowercase hex characters", {"batch_id": batch_id[:100]})

    def read() -> dict[str, Any] | None:
        batch = store.get_batch(batch_id)
        # With API keys on, a batch is its submitter's: another key gets 404, as for its jobs.
        if batch is None or (client_id and batch.client_id != client_id):
            return None
        return batch_view(batch, store.get_many([item.job_id for item in batch.items if item.job_id]))

    view = await in_thread(read)
    if view is None:
        raise NotFound(f"no batch with id {batch_id}")
    chosen = _format(request, format)
    if chosen == "json":
        return JSONResponse(view)
    text = as_csv(view) if chosen == "csv" else as_json_lines(view)
    extension = "csv" if chosen == "csv" else "jsonl"
    return Response(
        text,
        media_type=MEDIA_TYPES[chosen],
        headers={"Content-Disposition": f'attachment; filename="batch-{batch_id}.{extension}"'},
    )
