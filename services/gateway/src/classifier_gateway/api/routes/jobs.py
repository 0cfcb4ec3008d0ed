"""POST /v1/jobs: a gallery image by name (JSON) or an uploaded file (multipart)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from classifier_common import images
from classifier_common.deps import SettingsDep, StoreDep
from classifier_common.domain import Job, JobStatus, JobView, job_view, new_job_id, status_url, utcnow
from classifier_common.errors import InvalidInput, NotAnImage, PayloadTooLarge
from classifier_common.logs import request_id_var
from classifier_common.web import ERROR_RESPONSE_SCHEMA
from classifier_gateway.api import body
from classifier_gateway.api.deps import ClientIdDep, GalleryDep, PublisherDep
from classifier_gateway.api.routes.models import serving_pool
from classifier_gateway.submission import submit

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

IDEMPOTENCY_KEY_MAX = 200


@router.post(
    "",
    status_code=202,
    summary="Submit a classification job",
    description='JSON `{"model", "image"}` names a gallery image; multipart `file` + `model` uploads one. '
    "Answers 202 once the job is durably queued, with `Location` = its status URL.",
    response_model=JobView,
    openapi_extra={"requestBody": body.REQUEST_BODY},
    responses={
        401: ERROR_RESPONSE_SCHEMA,
        413: ERROR_RESPONSE_SCHEMA,
        415: ERROR_RESPONSE_SCHEMA,
        422: ERROR_RESPONSE_SCHEMA,
        429: ERROR_RESPONSE_SCHEMA,
        503: ERROR_RESPONSE_SCHEMA,
    },
)
async def create_job(
    request: Request,
    settings: SettingsDep,
    store: StoreDep,
    publisher: PublisherDep,
    gallery: GalleryDep,
    client_id: ClientIdDep,
) -> JSONResponse:
    idempotency_key = request.headers.get("idempotency-key") or None
    if idempotency_key is not None and len(idempotency_key) > IDEMPOTENCY_KEY_MAX:
        raise InvalidInput(f"Idempotency-Key is longer than {IDEMPOTENCY_KEY_MAX} characters")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > settings.max_upload_bytes + body.MULTIPART_OVERHEAD:
        raise PayloadTooLarge(
            f"request body is larger than {settings.max_upload_bytes} bytes", {"max_bytes": settings.max_upload_bytes}
        )
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    upload: bytes | None = None
    source: Literal["gallery", "upload"]
    callback: object  # the JSON body's str | None, or the multipart field as sent; body.callback_url checks it
    if content_type == "application/json":
        req = await body.parse_json(request)
        model_name, image_name, source, callback = req.model, req.image, "gallery", req.callback_url
    elif content_type == "multipart/form-data":
        model_name, image_name, upload, callback = await body.parse_multipart(request, settings.max_upload_bytes)
        source = "upload"
    else:
        raise NotAnImage(
            f"unsupported content type {content_type or '(none)'!r}: send application/json or multipart/form-data",
            {"accepted": ["application/json", "multipart/form-data"]},
        )

    callback_url = body.callback_url(callback, settings)
    spec, pool = serving_pool(settings, model_name)
    request_id = request_id_var.get()

    def accept() -> tuple[Job, bool]:
        # Everything that blocks (reading the gallery file or decoding the upload to check it, the
        # store insert, the publish and its confirm) in one hand-off to a thread.
        if upload is not None:
            images.inspect(upload)
            digest = images.sha256(upload)
        else:
            digest = gallery.sha256(image_name)
        job = Job(
            id=new_job_id(),
            status=JobStatus.queued,
            model=spec.name,
            image=image_name,
            source=source,
            image_sha256=digest,
            created_at=utcnow(),
            request_id=request_id,
            idempotency_key=idempotency_key,
            client_id=client_id,
            callback_url=callback_url,
        )
        return submit(store, publisher, job, upload, pool, claim_check_bytes=settings.claim_check_bytes)

    job, created = await run_in_threadpool(accept)
    headers = {"Location": status_url(job.id)}
    if not created:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(job_view(job), status_code=202, headers=headers)
