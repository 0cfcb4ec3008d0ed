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
