"""Every Prometheus metric the services export, defined once. Names carry the ``classifier_``
prefix and their unit. Dashboards, alert rules and the autoscaling adapter refer to these names
(see docs/metrics.md); renaming one here means renaming it there.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)

# --- every HTTP service -------------------------------------------------------------------
HTTP_REQUESTS = Counter(
    "classifier_http_requests_total",
    "HTTP requests answered, by service, route template, method and status code.",
    ["service", "route", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "classifier_http_request_duration_seconds",
    "Time to answer an HTTP request, by service, route template and method.",
    ["service", "route", "method"],
    buckets=LATENCY_BUCKETS,
)

# --- gateway ------------------------------------------------------------------------------
JOBS_SUBMITTED = Counter(
    "classifier_jobs_submitted_total",
    "Jobs accepted (202) and durably queued, by model and image source.",
    ["model", "source"],
)
JOBS_REJECTED = Counter(
    "classifier_jobs_rejected_total",
    "Submissions refused for want of capacity or a dependency (429/503), by reason.",
    ["reason"],
)
JOBS_BY_STATUS = Gauge(
    "classifier_jobs",
    "Jobs in the store, by status (read from the store at scrape time).",
    ["status"],
)
BACKLOG = Gauge(
    "classifier_backlog_jobs",
    "Jobs not finished yet: queued + running (read from the store at scrape time).",
)

# --- worker -------------------------------------------------------------------------------
JOBS_PROCESSED = Counter(
    "classifier_jobs_processed_total",
    "Deliveries a worker finished with, by model and outcome (succeeded, failed, skipped, requeued, dead_lettered).",
    ["model", "outcome"],
)
QUEUE_WAIT = Histogram(
    "classifier_job_queue_wait_seconds",
    "Time from the job's submission to a worker starting it.",
    ["model"],
    buckets=WAIT_BUCKETS,
)
PREPROCESS_SECONDS = Histogram(
    "classifier_preprocess_duration_seconds",
    "Time to decode and preprocess one image.",
    ["model"],
    buckets=LATENCY_BUCKETS,
)
INFERENCE_SECONDS = Histogram(
    "classifier_inference_duration_seconds",
    "Time of one forward pass (a whole batch).",
    ["model"],
    buckets=LATENCY_BUCKETS,
)
BATCH_SIZE = Histogram(
    "classifier_batch_size",
    "Images per forward pass.",
    ["model"],
    buckets=(1, 2, 4, 8, 16, 32, 64),
)
JOBS_DEAD_LETTERED = Counter(
    "classifier_jobs_dead_lettered_total",
    "Jobs whose queue message was dead-lettered before they finished, failed by the workers' "
    "reconciler (error code dead_lettered), by the broker's reason (delivery_limit, rejected).",
    ["reason"],
)
for _reason in ("delivery_limit", "rejected"):  # exported at 0 from the start, so alerts see the series
    JOBS_DEAD_LETTERED.labels(_reason)
IN_FLIGHT = Gauge("classifier_jobs_in_flight", "Jobs a worker holds and has not acked yet.")
MODEL_LOADED = Gauge("classifier_model_loaded", "1 when the model is loaded and warmed up in this worker.", ["model"])
WORKER_READY = Gauge("classifier_worker_ready", "1 when this worker is consuming jobs.")
# The runtime check at start-up (classifier_worker.selection): each runtime checked on the gallery
# photos against fp32 torch, and the one chosen.
RUNTIME_SELECTED = Gauge(
    "classifier_runtime_selected",
    "1 for the runtime that runs the model in this worker, 0 for the others checked.",
    ["model", "runtime"],
)
RUNTIME_DISAGREEMENTS = Gauge(
    "classifier_runtime_gallery_disagreements",
    "Gallery photos whose top-1 class differs from fp32 torch's, per runtime checked at start-up.",
    ["model", "runtime"],
)
RUNTIME_FORWARD_SECONDS = Gauge(
    "classifier_runtime_forward_seconds",
    "Median forward pass at batch 1 in the start-up check, per runtime.",
    ["model", "runtime"],
)
RUNTIME_CHECK_SECONDS = Gauge(
    "classifier_runtime_check_seconds",
    "Time the start-up runtime check took (export if needed, agreement and self-benchmark).",
    ["model"],
)
RESULT_CACHE = Counter(
    "classifier_result_cache_total",
    "Result cache look-ups by model and outcome (hit, miss).",
    ["model", "outcome"],
)

# --- results ------------------------------------------------------------------------------
JOB_LOOKUPS = Counter(
    "classifier_job_lookups_total",
    "GET /v1/jobs/{id} answers by outcome (found, not_found, invalid).",
    ["outcome"],
)
LONG_POLL_CHECKS = Counter(
    "classifier_long_poll_checks_total",
    "The long-poll's store queries by what made it look: notice (a worker announced a waited-for "
    "job, or a request started waiting), fallback (its look at every waited-for job, each second "
    "and after a reconnect), tick (every 2 ms while not listening for notices).",
    ["trigger"],
)
FINISHED_LISTENER_CONNECTED = Gauge(
    "classifier_finished_listener_connected",
    "1 while this results service listens for the workers' finished-job notices; 0: its long-poll ticks.",
)
