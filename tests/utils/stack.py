"""Start the multi-process topology (scripts/stack.py) for a test, isolated: free ports, its own
queue on the real RabbitMQ, its own SQLite file."""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

from scripts.stack import Stack

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
MANAGEMENT = "http://127.0.0.1:15672/api"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def isolated_stack(
    tmp: Path, workers: int = 2, nginx: bool = True, worker_python: str = sys.executable, **env: str
) -> Stack:
    queue = f"test.{uuid.uuid4().hex[:8]}.jobs"
    base_port = free_port()
    return Stack(
        workers=workers,
        port=free_port(),
        gateway_port=free_port(),
        results_port=free_port(),
        worker_port=base_port,  # workers take base_port, base_port+1, ...
        state_dir=tmp,
        nginx=nginx,
        worker_python=worker_python,
        env={
            "CLASSIFIER_BROKER_URL": AMQP_URL,
            "CLASSIFIER_QUEUE_NAME": queue,
            "CLASSIFIER_STORE_URL": f"sqlite:///{tmp}/jobs.db",
            "CLASSIFIER_LOG_FORMAT": "json",
            "CLASSIFIER_HEARTBEAT_S": "1",
            # Workers start on fp32 torch without the start-up runtime check (seconds of CPU per
            # model, which a stack's tests do not exercise; tests/worker/test_selection.py does).
            "CLASSIFIER_RUNTIME": "torch",
            **env,
        },
    )


@contextlib.contextmanager
def running_stack(
    tmp: Path, seeded: tuple[Path, Path], workers: int = 2, nginx: bool = False, **env: str
) -> Iterator[Stack]:
    """An isolated stack over the seeded models and gallery, up and ready; stopped and its queues
    deleted afterwards."""
    models_dir, gallery_dir = seeded
    stack = isolated_stack(
        tmp,
        workers=workers,
        nginx=nginx,
        CLASSIFIER_MODELS_DIR=str(models_dir),
        CLASSIFIER_GALLERY_DIR=str(gallery_dir),
        **env,
    )
    try:
        stack.up(timeout=120)
        yield stack
    finally:
        stack.down()
        stack.delete_queues()


def log_records(stack: Stack, name_prefix: str) -> list[dict]:
    records = []
    for path in stack.state_dir.glob(f"{name_prefix}*.log"):
        for line in path.read_text().splitlines():
            if line.startswith("{"):
                records.append(json.loads(line))
    return records


def metric_value(url: str, name: str, labels: dict[str, str] | None = None) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels`` (Prometheus text format)."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
        text = response.read().decode()
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in (labels or {}).items()):
                total += sample.value
    return total
