"""The OpenAPI document as a person reads it in /docs: every request body with named examples that
work as they are in "Try it out", realistic answers, the one error body (``Error``) with what each
status means, the headers the API sends and reads, the API-key scheme, tags in order.

FastAPI generates the paths and schemas from the routes; :func:`document` rewrites that output in
one place, so the routes keep their own small declarations."""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from classifier_common.web.errors import ERROR_SCHEMA

ERROR_REF = {"$ref": "#/components/schemas/Error"}
GOLDFINCH = "n01531178_goldfinch.JPEG"
JOB_ID = "6d7ea9fff1394c918187b0bd2f9534a6"
REQUEST_ID = "3f2b8c1d9e4a4f6b8a7c5d2e1f0a9b8c"

TAGS = [
    {
        "name": "jobs",
        "description": "Submit an image for classification, follow the job, list your jobs, cancel a job "
        "while queued, retry a failed or canceled one.",
    },
    {"name": "batches", "description": "Many images in one request: one job per image, progress and every result."},
    {"name": "models", "description": "The models this server knows, and whether a worker has each loaded."},
    {"name": "images", "description": "The gallery: photos a job can name instead of uploading a file."},
    {"name": "info", "description": "Model and image names, the upload limit and the accepted formats."},
    {
        "name": "stats",
        "description": "The operator's view: each pool of workers' backlog, consumers, ready "
        "workers, throughput, latency and dead-lettered jobs.",
    },
    {"name": "health", "description": "Liveness, readiness and Prometheus metrics, for the platform."},
]

# What each status means, and one real answer of each.
ERRORS: dict[str, tuple[str, str, str, Any]] = {
    "401": ("A valid API key is required (only when the server has API keys).", "unauthorized",
            "a valid API key is required (X-API-Key header or Authorization: Bearer)", None),
    "404": ("No such job (or it has expired), or no such gallery image.", "not_found",
            f"no job with id {JOB_ID}", None),
    "409": ("The job's state forbids it: only a queued job can be canceled, only a failed or canceled job "
            "retried (once; an uploaded image is not kept, so not an upload job).", "conflict",
            "the job is running; only a queued job can be canceled", {"status": "running"}),
    "413": ("The upload is larger than the limit (`max_upload_bytes` in GET /v1/info).", "payload_too_large",
            "request body is larger than 10485760 bytes", {"max_bytes": 10485760}),
    "415": ("Not an image in an accepted format (`accepted_formats` in GET /v1/info).", "unsupported_media_type",
            "the file is not an image in a format we know",
            {"accepted": ["BMP", "GIF", "JPEG", "PNG", "TIFF", "WEBP"]}),
    "422": ("The request is invalid: an unknown model or gallery image, a model no worker pool serves "
            "(`model_not_served`), a malformed field or job id, an image that cannot be decoded, or an "
            "Idempotency-Key reused for another request.",
            "unknown_model", "unknown model 'efficientnet_lite9'",
            {"known_models": ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]}),
    "429": ("The queue of the model's worker pool is full, or this API key has its bound of queued jobs "
            "(`too_many_queued`): try again after `Retry-After` seconds.", "queue_full",
            "the job queue of pool 'default' is full (10000 waiting); retry later",
            {"pool": "default", "max_length": 10000}),
    "503": ("The job queue or the job store is unreachable: try again after `Retry-After` seconds.",
            "broker_unavailable", "the job queue is unreachable right now", None),
}  # fmt: skip

HEADERS: dict[str, dict[str, Any]] = {
    "Link": {
        "description": 'The next page, as in the body\'s `next`: `<URL>; rel="next"` (absent on the last page).',
        "schema": {"type": "string"},
    },
    "X-Request-ID": {
        "description": "The request's id (the one sent, or a new one): in every log line about it.",
        "schema": {"type": "string"},
        "example": REQUEST_ID,
    },
    "Location": {"description": "The job's status URL.", "schema": {"type": "string"}, "example": f"/v1/jobs/{JOB_ID}"},
    "Retry-After": {"description": "Seconds to wait before trying again.", "schema": {"type": "integer"}, "example": 5},
    "Idempotent-Replayed": {
        "description": "`true` when this answer is the job an earlier request with the same Idempotency-Key made.",
        "schema": {"type": "string", "enum": ["true"]},
    },
}

IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Any unique string (e.g. a UUID): a retried submission with the same key answers the job "
    "the first one made instead of making a second (then with `Idempotent-Replayed: true`).",
    "schema": {"type": "string", "maxLength": 200},
    "example": "9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d",
}

SECURITY_SCHEMES = {
    "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "When the server has API keys."},
    "Bearer": {"type": "http", "scheme": "bearer", "description": "The same key as `Authorization: Bearer <key>`."},
}

JOB_FIELDS = {
    "id": "The job's id (32 hex digits).",
    "status": "queued → running → succeeded or failed; canceled if canceled while queued.",
    "model": "The model that classifies the image.",
    "image": "The gallery image's name, or the uploaded file's name.",
    "source": "`gallery` (named) or `upload` (a file sent with the request).",
    "image_sha256": "SHA-256 of the image's bytes.",
    "created_at": "When the job was accepted.",
    "started_at": "When a worker started it; null while queued, and for a job canceled in the queue.",
    "finished_at": "When it succeeded, failed or was canceled.",
    "attempts": "Deliveries to a worker so far (more than 1 after a worker died mid-job).",
    "result": "Once succeeded: the top-5 predictions.",
    "error": "Once failed: why (`code` and `message`).",
    "request_id": "The X-Request-ID of the request that submitted it.",
    "retry_of": "The failed or canceled job this one retries (POST /v1/jobs/{id}/retry); null otherwise.",
    "retried_by": "The job that retries this one; null until it is retried (at most once).",
    "status_url": "Where to ask for this job (also the 202's Location).",
    "batch_id": "The batch it was submitted in (POST /v1/batches); null for a job submitted alone.",
    "queue": "While queued (GET only): `ahead`, the jobs queued before it for the same pool of workers, and "
    "`estimated_wait_s`, seconds until it is expected to be finished at the pool's recent throughput (null "
    "when unknown). Absent once a worker has taken it.",
}
PRIVATE_JOB_FIELDS = ("idempotency_key", "client_id", "callback_url")  # never in an answer

QUEUED_JOB = {
    "id": JOB_ID,
    "status": "queued",
    "model": "efficientnet_lite0",
    "image": GOLDFINCH,
    "source": "gallery",
    "image_sha256": "5b0b7b2a3f1f6c1ad0b8a7e6f2c4d3e1a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4",
    "created_at": "2026-12-05T08:00:00.120000Z",
    "started_at": None,
    "finished_at": None,
    "attempts": 0,
    "result": None,
    "error": None,
    "request_id": REQUEST_ID,
    "retry_of": None,
    "retried_by": None,
    "status_url": f"/v1/jobs/{JOB_ID}",
    "batch_id": None,
}
SUCCEEDED_JOB = {
    **QUEUED_JOB,
    "status": "succeeded",
    "started_at": "2026-12-05T08:00:00.180000Z",
    "finished_at": "2026-12-05T08:00:00.262000Z",
    "attempts": 1,
    "result": {
        "model_version": "efficientnet_lite0",
        "inference_ms": 61.8,
        "cached": False,
        "predictions": [
            {"class_index": 11, "label": "goldfinch", "score": 0.9712},
            {"class_index": 12, "label": "house finch", "score": 0.0091},
            {"class_index": 94, "label": "hummingbird", "score": 0.0042},
            {"class_index": 10, "label": "brambling", "score": 0.0031},
            {"class_index": 16, "label": "bulbul", "score": 0.0017},
        ],
    },
}

RETRY_ID = "0f4c2a9e8b7d4c6a9e1b3d5f7a9c1e3b"
FAILED_JOB = {
    **QUEUED_JOB,
    "status": "failed",
    "model": "efficientnet_lite1",
    "started_at": "2026-12-05T08:00:00.180000Z",
    "finished_at": "2026-12-05T08:00:00.190000Z",
    "attempts": 1,
    "error": {"code": "model_unavailable", "message": "model 'efficientnet_lite1' is not loaded by this worker"},
    "retried_by": RETRY_ID,
}
RETRY_JOB = {
    **QUEUED_JOB,
    "id": RETRY_ID,
    "model": "efficientnet_lite1",
    "created_at": "2026-12-05T08:05:00.000000Z",
    "retry_of": JOB_ID,
    "status_url": f"/v1/jobs/{RETRY_ID}",
}
NEXT_PAGE = "/v1/jobs?limit=2&cursor=WyIyMDI2LTEyLTA1VDA4OjAwOjAwLjEyMDAwMCswMDowMCIsICI2ZDdlYTlmIl0"
JOB_PAGE_EXAMPLES = {
    "a page": {
        "summary": "Newest first, with the next page's URL",
        "value": {"jobs": [RETRY_JOB, FAILED_JOB], "next": NEXT_PAGE},
    },
    "the last page": {"summary": "No next page", "value": {"jobs": [SUCCEEDED_JOB], "next": None}},
}

SUBMIT_EXAMPLES = {
    "application/json": {
        "gallery": {
            "summary": "A gallery photo",
            "value": {"model": "efficientnet_lite0", "image": GOLDFINCH},
        },
        "another photo": {
            "summary": "Another gallery photo",
            "value": {"model": "efficientnet_lite0", "image": "n07747607_orange.JPEG"},
        },
    },
}


BATCH_ID = "0c5f1e2d3b4a49588776655443322110"
ORANGE_JOB_ID = "a41f0c2b9d8e4c7f8b6a5d4e3c2b1a09"
_BATCH_ITEMS = [
    {
        "index": 0,
        "image": "goldfinch.jpg",
        "source": "upload",
        "job_id": JOB_ID,
        "status": "queued",
        "status_url": f"/v1/jobs/{JOB_ID}",
        "result": None,
        "error": None,
    },
    {
        "index": 1,
        "image": "notes.txt",
        "source": "upload",
        "job_id": None,
        "status": "refused",
        "status_url": None,
        "result": None,
        "error": {
            "code": "unsupported_media_type",
            "message": "the file is not an image in a format we know",
            "details": {"accepted": ["BMP", "GIF", "JPEG", "PNG", "TIFF", "WEBP"]},
        },
    },
    {
        "index": 2,
        "image": "n07747607_orange.JPEG",
        "source": "gallery",
        "job_id": ORANGE_JOB_ID,
        "status": "queued",
        "status_url": f"/v1/jobs/{ORANGE_JOB_ID}",
        "result": None,
        "error": None,
    },
]
_NO_COUNTS = {"queued": 0, "running": 0, "succeeded": 0, "failed": 0, "canceled": 0, "refused": 0, "expired": 0}
QUEUED_BATCH: dict[str, Any] = {
    "id": BATCH_ID,
    "status": "in_progress",
    "model": "efficientnet_lite0",
    "created_at": "2026-12-05T08:00:00.120000Z",
    "status_url": f"/v1/batches/{BATCH_ID}",
    "total": 3,
    "accepted": 2,
    "refused": 1,
    "counts": {**_NO_COUNTS, "queued": 2, "refused": 1},
    "items": _BATCH_ITEMS,
}
DONE_BATCH: dict[str, Any] = {
    **QUEUED_BATCH,
    "status": "done",
    "counts": {**_NO_COUNTS, "succeeded": 2, "refused": 1},
    "items": [
        {**_BATCH_ITEMS[0], "status": "succeeded", "result": SUCCEEDED_JOB["result"]},
        _BATCH_ITEMS[1],
        {
            **_BATCH_ITEMS[2],
            "status": "succeeded",
            "result": {
                "model_version": "efficientnet_lite0",
                "inference_ms": 58.2,
                "cached": False,
                "predictions": [{"class_index": 950, "label": "orange", "score": 0.8874}],
            },
        },
    ],
}
BATCH_CSV = (
    "index,image,source,job_id,status,label,score,model_version,cached,error_code,error_message\r\n"
    f"0,goldfinch.jpg,upload,{JOB_ID},succeeded,goldfinch,0.9712,efficientnet_lite0,False,,\r\n"
    "1,notes.txt,upload,,refused,,,,,unsupported_media_type,the file is not an image in a format we know\r\n"
    f"2,n07747607_orange.JPEG,gallery,{ORANGE_JOB_ID},succeeded,orange,0.8874,efficientnet_lite0,False,,\r\n"
)


# Answers of the catalog routes, as a seeded server gives them.
CATALOG_EXAMPLES: dict[str, Any] = {
    "/v1/models": [
        {"name": "efficientnet_lite0", "architecture": "EfficientNet-Lite0", "input_size": 224,
         "num_classes": 1000, "available": True, "loaded": True},
        {"name": "resnet18", "architecture": "ResNet-18", "input_size": 224,
         "num_classes": 1000, "available": False, "loaded": False},
    ],
    "/v1/images": [
        {"name": GOLDFINCH, "width": 500, "height": 375, "bytes": 128473, "url": f"/v1/images/{GOLDFINCH}"},
    ],
    "/v1/info": {
        "models": ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"],
        "images": [GOLDFINCH, "n07747607_orange.JPEG"],
        "max_upload_bytes": 10485760,
        "accepted_formats": ["BMP", "GIF", "JPEG", "PNG", "TIFF", "WEBP"],
        "accepted_media_types": ["image/bmp", "image/gif", "image/jpeg", "image/png", "image/tiff", "image/webp"],
        "batch_max_items": 100,
        "batch_max_bytes": 33554432,
    },
}  # fmt: skip


# GET /v1/stats on a busy pool.
STATS_EXAMPLE: dict[str, Any] = {
    "window_s": 300,
    "generated_at": "2026-12-05T08:00:00.120000Z",
    "broker_error": None,
    "pools": [
        {
            "pool": "default",
            "queue": "classifier.jobs",
            "models": ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"],
            "backlog": 14,
            "queued": 12,
            "running": 2,
            "broker": {"ready": 10, "unacked": None, "consumers": 2, "dead_letters": 0},
            "ready_workers": 2,
            "finished": 431,
            "failed": 3,
            "dead_lettered": 1,
            "jobs_per_s": 1.437,
            "busy_jobs_per_s": 2.1,
            "p50_latency_s": 0.41,
            "p95_latency_s": 6.8,
        }
    ],
}


# Set here, after FastAPI wrote the document: it drops the nulls of examples given to a route.
RESPONSE_EXAMPLES: dict[str, Any] = {**CATALOG_EXAMPLES, "/v1/stats": STATS_EXAMPLE}


def document(app: FastAPI) -> None:
    """Serve the rewritten document at the app's openapi_url (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes, tags=TAGS
            )
            app.openapi_schema = rewrite(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def rewrite(schema: dict[str, Any]) -> dict[str, Any]:
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):  # never answered: errors use Error
        schemas.pop(unused, None)
    schemas["Error"] = ERROR_SCHEMA
    components["headers"] = HEADERS
    components["responses"] = {status: _error_response(status) for status in ERRORS}
    components["securitySchemes"] = SECURITY_SCHEMES
    _describe_job(schemas.get("JobView"))
    used_tags = {tag for ops in schema.get("paths", {}).values() for op in ops.values() for tag in op.get("tags", [])}
    schema["tags"] = [tag for tag in TAGS if tag["name"] in used_tags]

    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            _rewrite_operation(path, method, operation)
    return schema


def _error_response(status: str) -> dict[str, Any]:
    description, code, message, details = ERRORS[status]
    headers = {"X-Request-ID": {"$ref": "#/components/headers/X-Request-ID"}}
    if status in ("429", "503"):
        headers["Retry-After"] = {"$ref": "#/components/headers/Retry-After"}
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    example = {"error": error, "request_id": REQUEST_ID}
    content = {"application/json": {"schema": ERROR_REF, "example": example}}
    return {"description": description, "headers": headers, "content": content}


def _describe_job(job: dict[str, Any] | None) -> None:
    if job is None:
        return
    properties = job.get("properties", {})
    for name in PRIVATE_JOB_FIELDS:
        properties.pop(name, None)
        if name in job.get("required", []):
            job["required"].remove(name)
    for name, description in JOB_FIELDS.items():
        if name in properties:
            properties[name]["description"] = description
    job["description"] = "A job as the API shows it."


def _rewrite_operation(path: str, method: str, operation: dict[str, Any]) -> None:
    responses = operation.setdefault("responses", {})
    for status in list(responses):
        if status in ERRORS:
            responses[status] = {"$ref": f"#/components/responses/{status}"}
        elif status.startswith(("4", "5")):
            responses.pop(status)  # FastAPI's own validation answer: the service never sends that shape
    for status, response in responses.items():
        if status.startswith("2") and "$ref" not in response:
            response.setdefault("headers", {})["X-Request-ID"] = {"$ref": "#/components/headers/X-Request-ID"}

    if path in RESPONSE_EXAMPLES and "200" in responses:
        content = responses["200"].setdefault("content", {})
        content.setdefault("application/json", {})["example"] = RESPONSE_EXAMPLES[path]
    if path.startswith("/v1/batches"):
        _batch_operation(method, operation)
        return
    if not path.startswith(("/v1/jobs", "/v1/stats")):
        return
    operation["security"] = [{"ApiKey": []}, {"Bearer": []}, {}]  # {}: none, when keys are off
    responses.setdefault("401", {"$ref": "#/components/responses/401"})
    if not path.startswith("/v1/jobs"):
        return
    ok = responses.get("202") or responses.get("200")
    if path == "/v1/jobs" and method == "get" and ok is not None:
        ok.setdefault("content", {}).setdefault("application/json", {})["examples"] = JOB_PAGE_EXAMPLES
        ok.setdefault("headers", {})["Link"] = {"$ref": "#/components/headers/Link"}
    elif method == "post" and path.endswith("/retry"):
        _submission(operation)
        responses["202"]["description"] = "Accepted: the new job is durably queued; `Location` is its status URL."
        responses["202"]["content"]["application/json"]["examples"] = {
            "retry": {"summary": "The new job, naming the one it retries", "value": RETRY_JOB}
        }
        responses.setdefault("409", {"$ref": "#/components/responses/409"})
    elif method == "post":
        _submission(operation)
    elif ok is not None:
        ok.setdefault("content", {}).setdefault("application/json", {})["examples"] = {
            "succeeded": {"summary": "Finished: the top-5", "value": SUCCEEDED_JOB},
            "queued": {"summary": "Still waiting for a worker, 12 jobs ahead", "value": {
                **QUEUED_JOB, "queue": {"ahead": 12, "estimated_wait_s": 8.3}}},
        } if method == "get" else {"canceled": {"summary": "Canceled while queued", "value": {
            **QUEUED_JOB, "status": "canceled", "finished_at": "2026-12-05T08:00:01.500000Z"}}}  # fmt: skip


def _submission(operation: dict[str, Any]) -> None:
    parameters = operation.setdefault("parameters", [])
    if not any(p.get("name") == IDEMPOTENCY_KEY["name"] for p in parameters):
        parameters.append(IDEMPOTENCY_KEY)
    content = operation.get("requestBody", {}).get("content", {})
    json_body = content.get("application/json")
    if json_body is not None:
        json_body["examples"] = SUBMIT_EXAMPLES["application/json"]
        json_body.pop("example", None)
    accepted = operation["responses"].get("202")
    if accepted is not None:
        accepted["description"] = (
            "Accepted: the job is durably queued. `Location` is its status URL; poll it (with `?wait=`) for the result."
        )
        accepted["headers"] = {
            name: {"$ref": f"#/components/headers/{name}"}
            for name in ("Location", "X-Request-ID", "Idempotent-Replayed")
        }
        accepted.setdefault("content", {}).setdefault("application/json", {})["examples"] = {
            "queued": {"summary": "The ticket", "value": QUEUED_JOB}
        }


def _batch_operation(method: str, operation: dict[str, Any]) -> None:
    operation["security"] = [{"ApiKey": []}, {"Bearer": []}, {}]
    responses = operation["responses"]
    responses.setdefault("401", {"$ref": "#/components/responses/401"})
    if method == "post":
        parameters = operation.setdefault("parameters", [])
        if not any(p.get("name") == IDEMPOTENCY_KEY["name"] for p in parameters):
            parameters.append(IDEMPOTENCY_KEY)
        accepted = responses.get("202")
        if accepted is not None:
            accepted["description"] = (
                "Accepted: at least one item is queued as a job; each item says its job or why it was refused. "
                "`Location` is the batch's URL."
            )
            accepted["headers"] = {
                name: {"$ref": f"#/components/headers/{name}"}
                for name in ("Location", "X-Request-ID", "Idempotent-Replayed")
            }
            content = accepted.setdefault("content", {}).setdefault("application/json", {})
            content["examples"] = {"mixed": {"summary": "Two queued, one refused", "value": QUEUED_BATCH}}
        return
    ok = responses.get("200")
    if ok is not None:
        content = ok.setdefault("content", {})
        content.setdefault("application/json", {})["examples"] = {
            "done": {"summary": "Done: every result", "value": DONE_BATCH},
            "in progress": {"summary": "Still running", "value": QUEUED_BATCH},
        }
        content["text/csv"] = {"schema": {"type": "string"}, "example": BATCH_CSV}
        content["application/x-ndjson"] = {
            "schema": {"type": "string"},
            "example": "".join(json.dumps(item) + "\n" for item in DONE_BATCH["items"]),
        }
