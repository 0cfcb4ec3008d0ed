"""POST /v1/batches: many images (uploads and/or gallery names) in one request, one job each.
The batch is read back with GET /v1/batches/{id} from the results service."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from classifier_common.batches import batch_id_for, batch_view
from classifier_common.blocking import in_thread
from classifier_common.deps import StoreDep
from classifier_common.domain import Batch, batch_url
from classifier_common.errors import NotAnImage, PayloadTooLarge
from classifier_common.logs import request_id_var
from classifier_common.web import ERROR_RESPONSE_SCHEMA
from classifier_gateway.api import batch_body, body
from classifier_gateway.api.deps import SubmissionDep
from classifier_gateway.api.routes.models import model_and_pool
from classifier_gateway.batch_submission import BatchRequest, submit_batch

router = APIRouter(prefix="/v1/batches", tags=["batches"])


@router.post(
    "",
    status_code=202,
    summary="Submit many images at once",
    description="Multipart: one `model`, any number of `file` parts and `image` (gallery name) fields; or JSON "
    '`{"model", "images": [...]}`. Each item becomes one job, exactly as POST /v1/jobs would make it, or is '
    "refused with its own reason; one bad item never refuses the others. At most `batch_max_items` items "
    "(GET /v1/info; 422 `too_many_items` beyond) and `batch_max_bytes` of uploads in all (413 beyond). "
    "When every item is refused nothing is queued: 422 `batch_refused` with each item's reason, or 429/503 "
    "when all were refused for a passing reason (queue full, broker unreachable).",
    openapi_extra={"requestBody": batch_body.REQUEST_BODY},
    responses={
        202: {"description": "Accepted"},
        401: ERROR_RESPONSE_SCHEMA,
        413: ERROR_RESPONSE_SCHEMA,
        415: ERROR_RESPONSE_SCHEMA,
        422: ERROR_RESPONSE_SCHEMA,
        429: ERROR_RESPONSE_SCHEMA,
        503: ERROR_RESPONSE_SCHEMA,
    },
)
async def create_batch(
    request: Request,
    submission: SubmissionDep,
) -> JSONResponse:
    parts, client_id, idempotency_key = submission.parts, submission.client_id, submission.idempotency_key
    settings, store, publisher, gallery = parts.settings, parts.store, parts.publisher, parts.gallery
    max_items, max_bytes = settings.batch_max_items, settings.batch_max_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > batch_body.body_limit(max_items, max_bytes):
        raise PayloadTooLarge(f"a batch's uploads may have {max_bytes} bytes in all", {"max_bytes": max_bytes})
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        parsed = await batch_body.parse_json(request, max_items)
    elif content_type == "multipart/form-data":
        parsed = await batch_body.parse_multipart(request, max_items, max_bytes, settings.max_upload_bytes)
    else:
        raise NotAnImage(
            f"unsupported content type {content_type or '(none)'!r}: send multipart/form-data or application/json",
            {"accepted": ["multipart/form-data", "application/json"]},
        )
    callback_url = body.callback_url(parsed.callback, settings)
    spec, pool = model_and_pool(settings, parsed.model)
    batch_request = BatchRequest(
        id=batch_id_for(client_id, idempotency_key),
        model=spec.name,
        pool=pool,
        items=parsed.items,
        client_id=client_id,
        idempotency_key=idempotency_key,
        callback_url=callback_url,
        request_id=request_id_var.get(),
        max_upload_bytes=settings.max_upload_bytes,
        claim_check_bytes=settings.claim_check_bytes,
        max_queued_per_client=settings.max_queued_per_client,
    )

    def accept() -> tuple[dict, bool]:
        # Decoding the uploads, the store's writes and the publishes block: one hand-off to a thread.
        batch, created = submit_batch(store, publisher, gallery, batch_request)
        return _view(store, batch), created

    view, created = await in_thread(accept)
    headers = {"Location": batch_url(view["id"])}
    if not created:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(view, status_code=202, headers=headers)


def _view(store: StoreDep, batch: Batch) -> dict:
    return batch_view(batch, store.get_many([item.job_id for item in batch.items if item.job_id]))
