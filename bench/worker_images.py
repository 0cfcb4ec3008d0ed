"""Worker images side by side: image size, cold start (container start to /readyz 200) and the
worker's resident memory once ready, with one model and with three.

    python -m bench.worker_images --run classifier-worker:0.1.0 auto \\
        --run classifier-worker:0.1.0-onnx onnxruntime [--runs 3] [--engine podman] [--port 25100]

Each container runs as the chart runs a worker pod: read-only root filesystem, user 10001, no
capabilities, no privilege escalation, /tmp a tmpfs, the models and gallery folders (./data, as
`make setup` seeded them, ONNX exports and their checks included) mounted read-only, 1 CPU and
3 GiB (the chart's worker limits), CLASSIFIER_TORCH_THREADS=1, on the host network with the
RabbitMQ at --broker-url (a queue of its own, deleted afterwards). Cold start is timed from the
engine's `run` to the first /readyz 200 (models loaded, warmed up, runtime checked, broker and
store reached); the resident memory is VmRSS of the worker process (the container's PID 1) read
from /proc two seconds after that. Runs go round the configurations in turn, so a machine whose
speed drifts affects them alike; the table gives medians. The image's files are in the page cache
after the first start (what a node that ran the image before has); a node pulling it first adds
the download of its size.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench.procstats import memory_mb
from classifier_worker.cpu import cpu_model
from devstack.paths import REPO
from devstack.stack import delete_job_queues, http_status

MODELS_IN = "/var/lib/classifier/models"
GALLERY_IN = "/var/lib/classifier/gallery"
MODEL_SETS = ("efficientnet_lite0", "efficientnet_lite0,efficientnet_lite1,efficientnet_lite2")


@dataclass
class Case:
    image: str
    runtime: str
    models: str
    starts_s: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)


def image_size_mb(engine: str, image: str) -> float:
    size = subprocess.run(
        [engine, "image", "inspect", "--format", "{{.Size}}", image], check=True, capture_output=True, text=True
    ).stdout
    return int(size) / 1e6


def run_once(engine: str, case: Case, port: int, broker_url: str, data: Path, timeout_s: float) -> None:
    name = f"bench-worker-{uuid.uuid4().hex[:8]}"
    queue = f"bench.{uuid.uuid4().hex[:8]}.jobs"
    env = {
        "CLASSIFIER_HOST": "127.0.0.1",
        "CLASSIFIER_PORT": str(port),
        "CLASSIFIER_BROKER_URL": broker_url,
        "CLASSIFIER_QUEUE_NAME": queue,
        "CLASSIFIER_STORE_URL": "sqlite:////tmp/jobs.db",
        "CLASSIFIER_MODELS_DIR": MODELS_IN,
        "CLASSIFIER_GALLERY_DIR": GALLERY_IN,
        "CLASSIFIER_MODELS": case.models,
        "CLASSIFIER_RUNTIME": case.runtime,
        "CLASSIFIER_TORCH_THREADS": "1",
    }
    command = [
        engine, "run", "--detach", "--name", name, "--pull=never", "--network", "host",
        "--read-only", "--user", "10001:10001", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        "--tmpfs", "/tmp:rw,size=512m,mode=1777", "--cpus", "1", "--memory", "3g",
        "-v", f"{data / 'models'}:{MODELS_IN}:ro", "-v", f"{data / 'gallery'}:{GALLERY_IN}:ro",
    ]  # fmt: skip
    if engine == "podman":
        command.insert(command.index("--read-only") + 1, "--read-only-tmpfs=false")
    for key, value in env.items():
        command += ["--env", f"{key}={value}"]
    started = time.perf_counter()
    try:
        subprocess.run([*command, case.image], check=True, capture_output=True)
        while http_status(f"http://127.0.0.1:{port}/readyz", timeout=1.0) != 200:
            state = subprocess.run(
                [engine, "inspect", "--format", "{{.State.Running}}", name], capture_output=True, text=True
            ).stdout.strip()
            if state != "true":
                logs = subprocess.run([engine, "logs", name], capture_output=True, text=True)
                raise RuntimeError(f"{case.image} stopped:\n{(logs.stdout + logs.stderr)[-3000:]}")
            if time.perf_counter() - started > timeout_s:
                raise TimeoutError(f"{case.image} not ready in {timeout_s} s")
            time.sleep(0.1)
        case.starts_s.append(time.perf_counter() - started)
        time.sleep(2)
        pid = int(
            subprocess.run(
                [engine, "inspect", "--format", "{{.State.Pid}}", name], capture_output=True, text=True
            ).stdout
        )
        case.rss_mb.append(memory_mb(pid)[0])
    finally:
        subprocess.run([engine, "rm", "--force", "--time", "10", name], capture_output=True)
        delete_job_queues(broker_url, queue)


def table(cases: list[Case], sizes: dict[str, float]) -> str:
    lines = [
        "| image | runtime | image size | models | start to /readyz 200, median | each start | RSS ready, median |",
        "|---|---|---:|---|---:|---|---:|",
    ]
    for case in cases:
        models = f"{len(case.models.split(','))} ({case.models.replace('efficientnet_', '')})"
        lines.append(
            f"| {case.image} | {case.runtime} | {sizes[case.image]:.0f} MB | {models} "
            f"| {statistics.median(case.starts_s):.1f} s | {', '.join(f'{s:.1f}' for s in case.starts_s)} s "
            f"| {statistics.median(case.rss_mb):.0f} MiB |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", nargs=2, action="append", metavar=("IMAGE", "RUNTIME"), required=True)
    parser.add_argument("--models", action="append", help=f"a comma-separated model set (default: {MODEL_SETS})")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--engine", default=os.environ.get("CONTAINER_ENGINE") or shutil.which("docker") or "podman")
    parser.add_argument("--port", type=int, default=25100)
    parser.add_argument("--broker-url", default="amqp://guest:guest@127.0.0.1:5672/%2F")
    parser.add_argument("--data", type=Path, default=REPO / "data", help="holds models/ and gallery/ (make setup)")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args(argv)
    engine = Path(args.engine).name
    cases = [Case(image, runtime, models) for models in args.models or MODEL_SETS for image, runtime in args.run]
    sizes = {image: image_size_mb(engine, image) for image, _ in args.run}
    for n in range(args.runs):
        for case in cases:
            run_once(engine, case, args.port, args.broker_url, args.data.resolve(), args.timeout)
            print(f"run {n + 1}: {case.image} {case.runtime} [{case.models}]: ready in {case.starts_s[-1]:.1f} s, "
                  f"RSS {case.rss_mb[-1]:.0f} MiB", flush=True)  # fmt: skip
    when = datetime.now(UTC).strftime("%Y-%m-%d")
    print(f"\n{cpu_model()}, {os.cpu_count()} cores, {when}, {engine}\n")
    print(table(cases, sizes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
