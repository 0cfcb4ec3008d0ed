"""What one client does per job in each load scenario, and running a scenario into a result row."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.images import unique_jpeg
from bench.load import Connection, HttpError, Job, closed_loop, multipart, percentile
from bench.procstats import Meter
from devstack.paths import REPO

Images = list[tuple[str, bytes]]


@dataclass
class Row:
    """One line of the results table."""

    key: str  # stable id used by the ratios: "1", "2", "3-c1", "3-sat", ...
    scenario: str
    clients: int | None = None
    images_per_s: float | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    completed: int = 0
    errors: int = 0
    cpu_ms_per_image: float | None = None  # all our processes (incl. the load generator)
    foreign_cpu_s: float | None = None  # other tenants' CPU on the machine meanwhile
    processes: list[dict] = field(default_factory=list)
    note: str = ""
    not_run: str | None = None
    # For pooling slices of a row (see pooled); not written to the results.
    latencies_s: list[float] = field(default_factory=list, repr=False)
    cpu_images: int = 0  # the images cpu_ms_per_image divides by

    def as_dict(self) -> dict:
        out = asdict(self)
        del out["latencies_s"], out["cpu_images"]
        return out


def pooled(slices: list[Row], note: str) -> Row:
    """One row from slices of the same measurement taken at different times: images/s over all
    the measured windows, percentiles over all latencies, CPU over all images."""
    first = slices[0]
    row = Row(first.key, first.scenario, clients=first.clients, note=note)
    row.completed = sum(s.completed for s in slices)
    row.errors = sum(s.errors for s in slices)
    window_s = sum(s.completed / s.images_per_s for s in slices if s.images_per_s)
    row.images_per_s = row.completed / window_s if window_s else 0.0
    row.latencies_s = [v for s in slices for v in s.latencies_s]
    row.p50_ms = percentile(row.latencies_s, 50) * 1000
    row.p95_ms = percentile(row.latencies_s, 95) * 1000
    row.cpu_images = sum(s.cpu_images for s in slices)
    images = max(1, row.cpu_images)
    row.cpu_ms_per_image = sum((s.cpu_ms_per_image or 0) * s.cpu_images for s in slices) / images
    row.foreign_cpu_s = sum(s.foreign_cpu_s or 0 for s in slices)
    row.processes = [
        {
            "name": process["name"],
            "cpu_ms_per_image": sum(s.processes[i]["cpu_ms_per_image"] * s.cpu_images for s in slices) / images,
            "rss_mb": slices[-1].processes[i]["rss_mb"],
            "peak_rss_mb": max(s.processes[i]["peak_rss_mb"] for s in slices),
        }
        for i, process in enumerate(first.processes)
    ]
    errors = [s.note for s in slices if "first error" in s.note]
    if errors:
        row.note += " " + errors[0]
    return row


def _check_predictions(body: dict) -> None:
    predictions = body.get("predictions") or (body.get("result") or {}).get("predictions")
    if not predictions or not predictions[0].get("label"):
        raise HttpError(f"no predictions in {str(body)[:200]}")


def upload_body(model: str, images: Images, n: int, tag: bytes) -> tuple[bytes, str]:
    """The multipart body of job ``n``: image ``n`` made byte-unique by ``tag`` (the result
    cache never answers it), and its content type."""
    name, data = images[n % len(images)]
    return multipart({"model": model}, "file", name, unique_jpeg(data, n, tag))


def submit_upload(gateway: Connection, body: bytes, content_type: str) -> str:
    """POST /v1/jobs; the job's status URL once the gateway answered 202."""
    status, response, raw = gateway.request("POST", "/v1/jobs", body, {"Content-Type": content_type})
    if status != 202:
        raise HttpError(f"POST /v1/jobs answered {status}: {raw[:200]!r}")
    return response.getheader("Location")


def wait_succeeded(results: Connection, location: str) -> dict:
    """Long-poll the job's status URL until it has succeeded; its view."""
    while True:
        status, _, raw = results.request("GET", f"{location}?wait=30")
        if status != 200:
            raise HttpError(f"GET {location} answered {status}: {raw[:200]!r}")
        view = json.loads(raw)
        if view["status"] == "succeeded":
            return view
        if view["status"] in ("failed", "canceled"):
            raise HttpError(f"job {view['status']}: {view.get('error')}")


def submit_and_wait(gateway: Connection, results: Connection, body: bytes, content_type: str) -> dict:
    """POST /v1/jobs?wait=30: the finished job in the answer (200), or, when the gateway answered
    202 (not finished within the wait), long-poll its status URL on the results service."""
    status, response, raw = gateway.request("POST", "/v1/jobs?wait=30", body, {"Content-Type": content_type})
    if status == 202:
        return wait_succeeded(results, response.getheader("Location"))
    if status != 200:
        raise HttpError(f"POST /v1/jobs?wait=30 answered {status}: {raw[:200]!r}")
    view = json.loads(raw)
    if view["status"] != "succeeded":
        raise HttpError(f"job {view['status']}: {view.get('error')}")
    return view


def system_job(gateway_url: str, results_url: str, model: str, images: Images, tag: bytes, *, cached: bool) -> Job:
    """Submit an upload to the gateway and wait for the job in the same request (the client
    package's ``submit_many``; the results service's long-poll only if the wait runs out): the
    latency a client of the system sees. ``cached`` says whether the answer must come from the
    result cache (the same bytes ran before) or from inference (new bytes)."""

    def job(state: dict, n: int) -> None:
        gateway = state.setdefault("gateway", Connection(gateway_url))
        results = state.setdefault("results", Connection(results_url))
        view = submit_and_wait(gateway, results, *upload_body(model, images, n, tag))
        _check_predictions(view)
        if view["result"]["cached"] is not cached:
            raise HttpError(f"expected cached={cached}, got {view['result']}")

    return job


def submit_only_job(gateway_url: str, model: str, images: Images) -> Job:
    """Only POST /v1/jobs (a gallery image by name): the gateway's accepted submissions per second."""

    def job(state: dict, n: int) -> None:
        gateway = state.setdefault("gateway", Connection(gateway_url))
        body = json.dumps({"model": model, "image": images[n % len(images)][0]}).encode()
        status, _, raw = gateway.request("POST", "/v1/jobs", body, {"Content-Type": "application/json"})
        if status != 202:
            raise HttpError(f"POST /v1/jobs answered {status}: {raw[:200]!r}")

    return job


def upload_only_job(gateway_url: str, model: str, images: Images, tag: bytes) -> Job:
    """Only POST /v1/jobs with a byte-unique upload (inspected, hashed and carried in the message)."""

    def job(state: dict, n: int) -> None:
        gateway = state.setdefault("gateway", Connection(gateway_url))
        submit_upload(gateway, *upload_body(model, images, n, tag))

    return job


def classify_job(url: str, path: str, model: str, images: Images, tag: bytes) -> Job:
    """One synchronous request that answers with the predictions (the naive app, BentoML)."""

    def job(state: dict, n: int) -> None:
        server = state.setdefault("server", Connection(url))
        body, content_type = upload_body(model, images, n, tag)
        status, _, raw = server.request("POST", path, body, {"Content-Type": content_type})
        if status != 200:
            raise HttpError(f"POST {path} answered {status}: {raw[:200]!r}")
        _check_predictions(json.loads(raw))

    return job


def run_load(row: Row, job: Job, pids: dict[str, int], *, clients: int, warmup_s: float, duration_s: float) -> Row:
    """Closed-loop load; fills the row with throughput, latency and per-process CPU/memory."""
    meter = Meter({**pids, "client": os.getpid()})
    meter.start()
    result = closed_loop(job, clients, warmup_s, duration_s)
    usages, foreign = meter.stop()
    done = max(1, result.total_completed)
    row.clients = clients
    row.images_per_s = result.throughput
    row.p50_ms = result.percentile(50) * 1000
    row.p95_ms = result.percentile(95) * 1000
    row.completed = result.completed
    row.errors = result.errors
    row.cpu_ms_per_image = sum(u.cpu_s for u in usages) / done * 1000
    row.cpu_images = done
    row.latencies_s = result.latencies_s
    row.foreign_cpu_s = foreign
    row.processes = [
        {
            "name": u.name,
            "cpu_ms_per_image": u.cpu_s / done * 1000,
            "rss_mb": u.rss_mb,
            "peak_rss_mb": u.peak_rss_mb,
        }
        for u in usages
    ]
    if result.first_error:
        row.note = (row.note + f" first error: {result.first_error}").strip()
    return row


def run_inprocess(
    rows: dict[str, Row],
    *,
    python: str,
    runtime: str = "auto",
    processes: int,
    threads: int,
    models_dir: Path,
    gallery_dir: Path,
    images: int | None,
    warmup_s: float,
    duration_s: float,
) -> list[Row]:
    """(1) and (2), {"forward": row, "preprocess": row}: ``processes`` fresh processes side by side
    (bench.inprocess), each one loop with ``threads`` torch threads, as the system runs that many
    worker processes; images/s is their sum; (2) runs the worker's ``runtime`` (CLASSIFIER_RUNTIME).
    They run on ``python`` (the workers' torch build), from the repository (``bench`` is imported
    from it)."""
    for scenario, row in rows.items():
        args = [
            python, "-m", "bench.inprocess", scenario,
            "--threads", str(threads), "--models-dir", str(models_dir), "--gallery-dir", str(gallery_dir),
            "--warmup", str(warmup_s), "--duration", str(duration_s), "--runtime", runtime,
        ]  # fmt: skip
        if images:
            args += ["--images", str(images)]
        children = [
            subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
            for _ in range(processes)
        ]
        outs = []
        for child in children:
            stdout, stderr = child.communicate()
            if child.returncode != 0:
                raise RuntimeError(f"bench.inprocess {scenario} failed:\n{stderr[-2000:]}")
            outs.append(json.loads(stdout)[scenario])
        latencies = [v / 1000 for out in outs for v in out["latencies_ms"]]
        cpu_s = sum(out["cpu_s"] for out in outs)
        row.clients = processes
        row.images_per_s = sum(out["images_per_s"] for out in outs)
        row.p50_ms, row.p95_ms = percentile(latencies, 50) * 1000, percentile(latencies, 95) * 1000
        row.completed = row.cpu_images = len(latencies)
        row.latencies_s = latencies
        row.cpu_ms_per_image = cpu_s / row.completed * 1000
        # The loops ran side by side: the machine's busy time over them less all of theirs.
        row.foreign_cpu_s = max(0.0, sum(out["busy_s"] for out in outs) / len(outs) - cpu_s)
        row.processes = [
            {
                "name": f"bench.inprocess-{i}",
                "cpu_ms_per_image": out["cpu_s"] / out["completed"] * 1000,
                "rss_mb": out["rss_mb"],
                "peak_rss_mb": out["peak_rss_mb"],
            }
            for i, out in enumerate(outs)
        ]
        row.note = f"{processes} process(es) x {threads} torch thread(s), one loop each, batch 1"
    return list(rows.values())


def not_run(key: str, scenario: str, why: str) -> Row:
    return Row(key=key, scenario=scenario, not_run=why)


RowRunner = Callable[[], Row]
