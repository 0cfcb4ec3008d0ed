"""The end-to-end suite against a worker pool at zero (KEDA scales to zero when the queue is
empty): its suite-wide fixture waits for the first worker instead of failing the first tests."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.utils.api import wake_workers
from tests.utils.stack import running_stack

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]


def test_waking_a_pool_at_zero_waits_for_its_first_worker(tmp_path: Path, seeded: tuple[Path, Path]) -> None:
    with running_stack(tmp_path, seeded, workers=0, nginx=True, CLASSIFIER_MODELS="efficientnet_lite0") as stack:
        outcome: dict[str, Any] = {}

        def wake() -> None:
            with httpx.Client(base_url=stack.base_url, timeout=30) as client:
                try:
                    outcome["job"] = wake_workers(client, {"efficientnet_lite0"}, "n01440764_tench.JPEG", timeout=120)
                except BaseException as exc:  # noqa: BLE001 - reported by the test's thread
                    outcome["error"] = exc

        waiter = threading.Thread(target=wake, daemon=True)
        waiter.start()
        time.sleep(5)
        assert waiter.is_alive(), outcome  # no worker yet: nothing finished, nothing loaded
        stack.start_worker(0)
        waiter.join(timeout=150)
        assert not waiter.is_alive()
        assert "error" not in outcome, outcome
        assert outcome["job"]["status"] == "succeeded"


def queued(broker_url: str, queue: str) -> int:
    """Messages ready in ``queue`` (0 while the gateway has not declared it yet)."""
    import pika
    import pika.exceptions

    connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        return connection.channel().queue_declare(queue, passive=True).method.message_count
    except pika.exceptions.ChannelClosedByBroker:
        return 0
    finally:
        if connection.is_open:
            connection.close()


def test_waking_every_pool_at_zero_gives_each_a_job_of_its_own(tmp_path: Path, seeded: tuple[Path, Path]) -> None:
    """KEDA starts a pool's first worker only for a message in that pool's queue: with two pools
    at zero, a job of one model woke one pool and the suite waited out its timeout for the other.
    Here a stand-in for KEDA starts each pool's worker when its queue holds a job."""
    pools = {"lite": "efficientnet_lite0", "big": "efficientnet_lite1"}
    spec = ";".join(f"{pool}={model}" for pool, model in pools.items())
    with running_stack(tmp_path, seeded, workers=0, nginx=True, pools=spec) as stack:
        outcome: dict[str, Any] = {}

        def wake() -> None:
            with httpx.Client(base_url=stack.base_url, timeout=30) as client:
                try:
                    outcome["job"] = wake_workers(client, set(pools.values()), "n01440764_tench.JPEG", timeout=150)
                except BaseException as exc:  # noqa: BLE001 - reported by the test's thread
                    outcome["error"] = exc

        waiter = threading.Thread(target=wake, daemon=True)
        waiter.start()
        broker, queue = stack.env["CLASSIFIER_BROKER_URL"], stack.env["CLASSIFIER_QUEUE_NAME"]
        woken: list[str] = []
        deadline = time.monotonic() + 30
        while len(woken) < len(pools) and time.monotonic() < deadline:
            for i, pool in enumerate(pools):
                if pool not in woken and queued(broker, f"{queue}.{pool}") > 0:
                    stack.start_worker(i, pool=pool)
                    woken.append(pool)
            time.sleep(0.2)
        assert sorted(woken) == sorted(pools), f"only {woken} got a job in their queue"
        waiter.join(timeout=180)
        assert not waiter.is_alive()
        assert "error" not in outcome, outcome
        assert outcome["job"]["status"] == "succeeded"
