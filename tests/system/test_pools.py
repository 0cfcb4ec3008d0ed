"""Two worker pools as separate processes on the real RabbitMQ (a queue name of their own): each
job is served by its model's pool, a model no pool serves is refused, and when one pool's workers
are all killed the other pool keeps serving while the killed pool's jobs wait in its queue, not
lost, until a worker of that pool is back."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pika
import pytest

from classifier_client import Client, InvalidInput
from devstack.isolated import AMQP_URL
from devstack.paths import REPO
from devstack.stack import Stack
from tests.utils.stack import log_records, running_stack

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]

POOLS = "lite=efficientnet_lite0;big=efficientnet_lite2"
IMAGE = "n01531178_goldfinch.JPEG"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, seeded: tuple[Path, Path]) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("pools"), seeded, workers=1, pools=POOLS) as stack:
        yield stack


@pytest.fixture(scope="module")
def gateway(stack: Stack) -> Iterator[Client]:
    with Client(f"http://127.0.0.1:{stack.gateway_port}") as client:
        yield client


@pytest.fixture(scope="module")
def results(stack: Stack) -> Iterator[Client]:
    with Client(f"http://127.0.0.1:{stack.results_port}") as client:
        yield client


def _submit(gateway: Client, model: str) -> str:
    return gateway.submit(model, image=IMAGE)["id"]


def _ready(stack: Stack, pool: str) -> int:
    """Messages ready in the pool's queue, as RabbitMQ counts them."""
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        queue = f"{stack.env['CLASSIFIER_QUEUE_NAME']}.{pool}"
        return connection.channel().queue_declare(queue, passive=True).method.message_count
    finally:
        connection.close()


def _pools(gateway: Client) -> dict[str, tuple[str | None, bool]]:
    return {m["name"]: (m["pool"], m["pool_ready"]) for m in gateway.models()}


def _served_by(stack: Stack, job_id: str) -> list[str]:
    """The workers whose log says they wrote this job's result."""
    names = []
    for name in stack.procs:
        if name.startswith("worker-"):
            records = log_records(stack, name)
            if any(r.get("job_id") == job_id and r["msg"] == "job succeeded" for r in records):
                names.append(name)
    return names


def test_each_model_is_served_by_its_pool_and_an_unserved_one_is_refused(
    stack: Stack, gateway: Client, results: Client
) -> None:
    assert stack.workers_of("lite") == ["worker-0"] and stack.workers_of("big") == ["worker-1"]
    lite_job, big_job = _submit(gateway, "efficientnet_lite0"), _submit(gateway, "efficientnet_lite2")
    for job_id in (lite_job, big_job):
        assert results.wait(job_id, timeout=60)["status"] == "succeeded"
    assert _served_by(stack, lite_job) == ["worker-0"]
    assert _served_by(stack, big_job) == ["worker-1"]

    with pytest.raises(InvalidInput) as refused:  # its weights are present
        gateway.submit("efficientnet_lite1", image=IMAGE)
    assert refused.value.status == 422 and refused.value.code == "model_not_served"
    assert refused.value.details["served_models"] == ["efficientnet_lite0", "efficientnet_lite2"]

    pools = _pools(gateway)
    assert pools["efficientnet_lite0"] == ("lite", True) and pools["efficientnet_lite2"] == ("big", True)
    assert pools["efficientnet_lite1"] == (None, False)


def test_a_pool_whose_workers_died_keeps_its_jobs_queued_while_the_other_serves(
    stack: Stack, gateway: Client, results: Client
) -> None:
    assert stack.kill("worker-1", signal.SIGKILL) == -signal.SIGKILL  # big's only worker
    waiting = [_submit(gateway, "efficientnet_lite2") for _ in range(3)]
    served = [_submit(gateway, "efficientnet_lite0") for _ in range(3)]
    for job_id in served:
        assert results.wait(job_id, timeout=60)["status"] == "succeeded"
    assert [results.get(job_id)["status"] for job_id in waiting] == ["queued"] * 3
    assert _ready(stack, "big") == 3 and _ready(stack, "lite") == 0

    deadline = time.monotonic() + 20  # big's last heartbeat ages out (CLASSIFIER_HEARTBEAT_S=1)
    while _pools(gateway)["efficientnet_lite2"] != ("big", False):
        assert time.monotonic() < deadline, _pools(gateway)
        time.sleep(0.5)
    assert _pools(gateway)["efficientnet_lite0"] == ("lite", True)

    stack.start_worker(1)  # a worker of pool big again: what waited is served
    stack.wait_ready(120, names=["worker-1"])
    for job_id in waiting:
        assert results.wait(job_id, timeout=60)["status"] == "succeeded"
    assert _ready(stack, "big") == 0


def test_make_stack_refuses_invalid_pools_before_starting_anything(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "scripts.stack", "run", "--pools", "a=efficientnet_lite0;b=efficientnet_lite0"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "model 'efficientnet_lite0' is in two pools: 'a' and 'b'" in result.stderr
