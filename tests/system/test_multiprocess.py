"""The production topology as separate processes against the real RabbitMQ: gateway, two
workers, results. A worker killed with SIGKILL mid-run loses nothing and duplicates nothing."""

from __future__ import annotations

import collections
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from classifier_client import Client
from devstack.stack import Stack
from tests.utils.stack import kill_mid_job, log_records, running_stack

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]

JOBS = 50


@pytest.fixture
def stack(tmp_path: Path, seeded: tuple[Path, Path]) -> Iterator[Stack]:
    with running_stack(
        tmp_path,
        seeded,
        workers=2,
        CLASSIFIER_MODELS="efficientnet_lite2",  # the slowest lite model: the kill lands mid-job
        CLASSIFIER_RESULT_CACHE="false",  # every job really runs
    ) as stack:
        yield stack


def service_clients(stack: Stack) -> tuple[Client, Client]:
    """The client on the gateway (submissions) and on the results service (jobs), no front door
    between them."""
    return Client(f"http://127.0.0.1:{stack.gateway_port}"), Client(f"http://127.0.0.1:{stack.results_port}")


def test_sigkill_a_worker_midway_loses_and_duplicates_nothing(stack: Stack, gallery_labels: dict[str, int]) -> None:
    gateway, results = service_clients(stack)
    images = sorted(gallery_labels)
    ids: list[str] = []

    def submit(n: int) -> None:
        for _ in range(n):
            ids.append(gateway.submit("efficientnet_lite2", image=images[len(ids) % len(images)])["id"])

    submit(JOBS)
    # Kill worker-0 once a good part of the work is done, while it holds a job it started.
    deadline = time.monotonic() + 120
    while sum(results.get(i)["status"] == "succeeded" for i in ids) < JOBS // 3:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    kill_mid_job(stack, ["worker-0"], more_work=lambda: submit(10))

    jobs = [results.wait(i, timeout=120) for i in ids]
    assert [j["status"] for j in jobs] == ["succeeded"] * len(ids), collections.Counter(j["status"] for j in jobs)
    for job in jobs:
        assert job["result"]["predictions"][0]["class_index"] >= 0

    # Exactly once: each job's outcome was written by exactly one worker, once.
    written = collections.Counter(r["job_id"] for r in log_records(stack, "worker-") if r["msg"] == "job succeeded")
    assert set(written) == set(ids)
    assert max(written.values()) == 1, [k for k, v in written.items() if v > 1]
    # The kill really interrupted work: the messages worker-0 held were delivered again.
    assert any(j["attempts"] >= 2 for j in jobs), "no job was redelivered: the kill did not land mid-work"
    # Both workers did work before the kill.
    by_worker = collections.Counter(
        r.get("worker_id") for r in log_records(stack, "worker-") if r["msg"] == "job succeeded"
    )
    assert len(by_worker) == 2, by_worker


def test_sigterm_drains_and_exits_zero(stack: Stack) -> None:
    gateway, results = service_clients(stack)
    ids = [gateway.submit("efficientnet_lite2", image="n01531178_goldfinch.JPEG")["id"] for _ in range(20)]
    time.sleep(0.5)
    assert stack.kill("worker-0", signal.SIGTERM) == 0
    assert stack.kill("worker-1", signal.SIGTERM) == 0
    drained = [r for r in log_records(stack, "worker-") if r["msg"] == "worker stopped"]
    assert len(drained) == 2 and all(r["drained"] for r in drained)
    # Nothing held was lost: after a new worker starts, every job finishes.
    stack.start_worker(2)
    stack.wait_ready(names=["worker-2"])
    statuses = [results.wait(i, timeout=120)["status"] for i in ids]
    assert statuses == ["succeeded"] * 20
