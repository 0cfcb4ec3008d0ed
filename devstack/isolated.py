"""The multi-process topology (devstack.stack) isolated on a shared RabbitMQ: free ports, its own
queue, its own SQLite file; what the tests and the benchmark start."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

from devstack.ports import free_port
from devstack.stack import Stack

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
MANAGEMENT = "http://127.0.0.1:15672/api"


def isolated_stack(
    tmp: Path,
    workers: int = 2,
    nginx: bool = True,
    worker_python: str = sys.executable,
    pools: str = "",
    **env: str,
) -> Stack:
    """``pools`` (CLASSIFIER_POOLS' compact form): ``workers`` workers per pool."""
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
        pools=pools,
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
