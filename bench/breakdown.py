"""Where a lone job's time goes: one client submits uploads one after another to the system
(the same isolated stack as the benchmark's rows (3)) and splits each job's latency by the
timestamps the system records on it.

    python -m bench.breakdown                 # 100 jobs, 2 workers, the benchmark's torch python
    python -m bench.breakdown --jobs 300 --set CLASSIFIER_MAX_BATCH=1

    post                the client's POST /v1/jobs, until its 202 (the job recorded and its message confirmed)
    record_to_start     created_at -> started_at: publish, confirm, delivery, the worker starting it
    worker              started_at -> finished_at: decode, forward pass, the result written
    finish_to_answer    finished_at -> the long-poll GET answered
    total               what the client waited

The store keeps timestamps to the millisecond, so the middle two are rounded to it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench import servers
from bench.images import load_gallery
from bench.load import Connection
from bench.scenarios import submit_upload, upload_body, wait_succeeded

MODEL = "efficientnet_lite0"
WARMUP_JOBS = 5


def _ts(value: str) -> float:
    return dt.datetime.fromisoformat(value).timestamp()


def measure(gateway: Connection, results: Connection, images: list, jobs: int) -> dict[str, list[float]]:
    parts: dict[str, list[float]] = {k: [] for k in ("post", "record_to_start", "worker", "finish_to_answer", "total")}
    tag = uuid.uuid4().hex[:8].encode()
    for n in range(WARMUP_JOBS + jobs):
        body, content_type = upload_body(MODEL, images, n, tag)
        began = time.time()
        location = submit_upload(gateway, body, content_type)
        posted = time.time()
        job = wait_succeeded(results, location)
        answered = time.time()
        if n < WARMUP_JOBS:
            continue
        created, started, finished = (_ts(job[k]) for k in ("created_at", "started_at", "finished_at"))
        parts["post"].append(posted - began)
        parts["record_to_start"].append(started - created)
        parts["worker"].append(finished - started)
        parts["finish_to_answer"].append(answered - finished)
        parts["total"].append(answered - began)
    return parts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.breakdown", description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=100)
    servers.add_system_arguments(parser)
    args = parser.parse_args(argv)
    python, env = servers.system_settings(args, MODEL)
    images = load_gallery(args.gallery_dir, None)
    with (
        tempfile.TemporaryDirectory(prefix="bench-breakdown-") as tmp,
        servers.system(Path(tmp), workers=args.workers, env=env, worker_python=python) as stack,
    ):
        parts = measure(
            Connection(f"http://127.0.0.1:{stack.gateway_port}"),
            Connection(f"http://127.0.0.1:{stack.results_port}"),
            images,
            args.jobs,
        )
    print(f"{args.jobs} jobs, one at a time, {args.workers} workers; milliseconds")
    print(f"{'':18} {'p50':>7} {'p95':>7}")
    for name, values in parts.items():
        ordered = sorted(values)
        p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
        print(f"{name:18} {statistics.median(values) * 1000:7.2f} {p95 * 1000:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
