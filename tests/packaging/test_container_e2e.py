"""The checks `make container-e2e` (scripts/container_e2e.py) applies to what the containers
did: they must fail on a lost or doubly written job; the build-output parsing that decides
which earlier build stages are obsolete; and the render it runs its pods from (two worker pools)."""

from __future__ import annotations

import json
import urllib.parse
import uuid
from pathlib import Path

import pika
import pytest

from classifier_common.broker.rabbitmq.topology import Topology
from classifier_common.config import Settings
from devstack.isolated import AMQP_URL
from scripts.container_e2e import (
    ONNX_ONLY,
    POOLS,
    RELEASE,
    WORKERS,
    System,
    check_one_outcome_each,
    interrupted,
    layer_id,
    outcomes_written,
    render,
)
from scripts.pod_flags import Render, load
from tests.k8s import chart


def log(*records: tuple[str, str]) -> str:
    return "\n".join(json.dumps({"msg": msg, "job_id": job}) for msg, job in records) + "\nnot json\n"


def test_layer_ids_from_podman_build_output() -> None:
    assert layer_id("--> 9aee817e4c1\n") == "9aee817e4c1"
    assert layer_id("--> Using cache " + "a" * 64 + "\n") == "a" * 64
    assert layer_id("[1/2] STEP 3/9: RUN pip install x") is None
    assert layer_id("Successfully tagged localhost/classifier-worker:0.1.0") is None


def test_outcomes_are_counted_per_job_from_the_workers_json_logs() -> None:
    logs = log(("job succeeded", "a"), ("job failed: bad image", "b"), ("job requeued: x", "a"), ("job succeeded", "a"))
    assert outcomes_written(logs) == {"a": 2, "b": 1}


def test_a_kill_counts_as_mid_job_only_when_a_started_job_ran_again_unrequeued() -> None:
    """The SIGKILL step repeats its kill until one lands while the worker holds a started job:
    one started again (attempts > 1) that no worker requeued itself (a store hiccup does that)."""
    jobs = {"a": ("succeeded", 1), "b": ("succeeded", 2), "c": ("succeeded", 2)}
    logs = log(("job succeeded", "a"), ("job requeued: store unavailable", "c"), ("job succeeded", "b"))
    assert interrupted(["a", "b", "c"], jobs, logs) == ["b"]
    # A kill between two jobs: every job ran once, or ran again only because it was requeued.
    assert interrupted(["a", "c"], jobs, logs) == []


def test_every_job_succeeded_once_passes() -> None:
    jobs = {"a": ("succeeded", 1), "b": ("succeeded", 2)}
    line = check_one_outcome_each(["a", "b"], jobs, log(("job succeeded", "a"), ("job succeeded", "b")), "x")
    assert "lost 0" in line and "run more than once 1" in line


@pytest.mark.parametrize(
    ("jobs", "logs"),
    [
        ({"a": ("succeeded", 1), "b": ("running", 1)}, log(("job succeeded", "a"))),  # lost
        (
            {"a": ("succeeded", 1), "b": ("succeeded", 2)},
            log(("job succeeded", "a"), ("job succeeded", "b"), ("job succeeded", "b")),
        ),
        ({"a": ("succeeded", 1), "b": ("succeeded", 1)}, log(("job succeeded", "a"))),  # never logged
    ],
)
def test_a_lost_or_doubly_written_job_fails_the_run(jobs: dict, logs: str) -> None:
    with pytest.raises(AssertionError):
        check_one_outcome_each(["a", "b"], jobs, logs, "x")


def test_the_render_runs_one_worker_deployment_per_pool_on_its_own_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HELM", chart.helm())
    broker = urllib.parse.urlsplit("amqp://guest:guest@127.0.0.1:5672/%2F")
    objects = load(render("0.1.0", "e2e.test.jobs", broker, POOLS))
    secret = {
        "kind": "Secret",
        "metadata": {"name": "classifier-e2e-broker"},
        "stringData": {"username": "u", "password": "p"},
    }
    pods = Render(objects, extra=[secret], engine="docker")
    claims = {f"{RELEASE}-{volume}": f"/tmp/{volume}" for volume in ("models", "gallery", "store")}
    assert set(WORKERS) == set(POOLS)
    for pool in POOLS:
        (main,) = [c for c in pods.containers("Deployment", f"{RELEASE}-worker-{pool}", claims) if not c.init]
        assert main.env["CLASSIFIER_POOL"] == pool
        assert main.env["CLASSIFIER_QUEUE_NAME"] == "e2e.test.jobs"
        expected = ";".join(f"{name}={','.join(served)}" for name, served in POOLS.items())
        assert main.env["CLASSIFIER_POOLS"] == expected
        # The lite pool runs the worker image without torch, on the seed Job's exports.
        onnx_only = pool in ONNX_ONLY
        assert main.image == ("classifier-worker:0.1.0-onnx" if onnx_only else "classifier-worker:0.1.0")
        assert main.env["CLASSIFIER_RUNTIME"] == "auto"  # the ONNX-only one picks between its two files
    assert ONNX_ONLY and set(POOLS) > ONNX_ONLY
    (seed,) = pods.containers("Job", next(o["metadata"]["name"] for o in objects if o["kind"] == "Job"), claims)
    assert seed.image == "classifier-worker:0.1.0"


@pytest.mark.rabbitmq
def test_teardown_removes_every_pools_queues_from_the_shared_broker(tmp_path: Path) -> None:
    """The run leaves nothing on the machine's RabbitMQ: each pool's queue and dead-letter queue."""
    queue = f"e2e.{uuid.uuid4().hex[:8]}.jobs"
    pools = ["lite", "big"]
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        for pool in pools:
            Topology.from_settings(Settings(broker_url=AMQP_URL, queue_name=queue), pool).declare(connection.channel())
        System(engine="podman", workdir=tmp_path, port=0, queue=queue, broker_url=AMQP_URL, pools=pools).teardown()
        left = []
        for name in [f"{queue}.{pool}" for pool in pools] + [f"{queue}.{pool}.dead" for pool in pools]:
            channel = connection.channel()
            try:
                channel.queue_declare(name, passive=True)
                left.append(name)
            except pika.exceptions.ChannelClosedByBroker:
                pass
    finally:
        connection.close()
    assert left == [], f"left on the broker: {left}"
