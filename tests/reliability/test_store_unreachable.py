"""A MongoDB store that cannot be reached (no server answers at the URL; real pymongo, no mock):
the gateway and the results service answer 503 with Retry-After and stay alive; a worker keeps
the job it was handed (waiting, neither acking nor dead-lettering it), and gives it back to the
queue when stopped. The SQLite outage, with recovery, is in test_faults.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pika
import pytest
from fastapi.testclient import TestClient

from classifier_common.config import Settings
from classifier_common.messages import JobMessage
from classifier_results.main import create_app as create_results_app
from classifier_standalone.app import create_app
from devstack.isolated import AMQP_URL
from devstack.ports import free_port
from devstack.stack import delete_job_queues
from tests.reliability.accounting import read_json_lines, wait_until
from tests.utils.api import assert_error_shape
from tests.utils.jobs import queued_job

# Port 1 refuses at once; the short selection timeout keeps each refusal quick.
UNREACHABLE = "mongodb://127.0.0.1:1/classifier?serverSelectionTimeoutMS=300&connectTimeoutMS=300"
GOLDFINCH = "n01531178_goldfinch.JPEG"
MODEL = "efficientnet_lite0"


def test_gateway_answers_503_while_mongo_is_unreachable(tmp_path: Path, seeded: tuple[Path, Path]) -> None:
    settings = Settings(
        broker_url=f"memory://mongo-down-{uuid.uuid4().hex}",
        store_url=UNREACHABLE,
        spool_dir=None,
        models_dir=seeded[0],
        gallery_dir=seeded[1],
        models=[MODEL],
        log_format="text",
    )
    with TestClient(create_app(settings)) as client:
        response = client.post("/v1/jobs", json={"model": MODEL, "image": GOLDFINCH})
        assert_error_shape(response, 503, "store_unavailable")
        assert int(response.headers["retry-after"]) > 0
        ready = client.get("/readyz")
        assert_error_shape(ready, 503, "not_ready")
        assert ready.json()["error"]["details"]["store"]
        assert client.get("/healthz").status_code == 200  # alive: Kubernetes must not restart it
        assert client.get("/v1/models").status_code == 200  # what needs no store still works
        # Nothing was queued for the refused job.
        assert client.app.state.publisher.depth() == 0


def test_results_answers_503_while_mongo_is_unreachable() -> None:
    with TestClient(create_results_app(Settings(store_url=UNREACHABLE, log_format="text"))) as client:
        assert_error_shape(client.get("/v1/jobs/" + "0" * 32), 503, "store_unavailable")
        assert_error_shape(client.delete("/v1/jobs/" + "0" * 32), 503, "store_unavailable")
        assert_error_shape(client.get("/readyz"), 503, "not_ready")


def _queue_counts(channel: pika.adapters.blocking_connection.BlockingChannel, queue: str) -> tuple[int, int]:
    ready = channel.queue_declare(queue, passive=True).method.message_count
    dead = channel.queue_declare(f"{queue}.dead", passive=True).method.message_count
    return ready, dead


@pytest.mark.slow
@pytest.mark.rabbitmq
def test_worker_keeps_its_job_while_mongo_is_unreachable(tmp_path: Path, seeded: tuple[Path, Path]) -> None:
    queue_name = f"test.{uuid.uuid4().hex[:8]}.jobs"
    queue = f"{queue_name}.default"  # the one pool's queue
    port = free_port()
    env = {
        **os.environ,
        "CLASSIFIER_BROKER_URL": AMQP_URL,
        "CLASSIFIER_QUEUE_NAME": queue_name,
        "CLASSIFIER_STORE_URL": UNREACHABLE,
        "CLASSIFIER_MODELS_DIR": str(seeded[0]),
        "CLASSIFIER_GALLERY_DIR": str(seeded[1]),
        "CLASSIFIER_MODELS": MODEL,
        "CLASSIFIER_PORT": str(port),
        "CLASSIFIER_LOG_FORMAT": "json",
        "CLASSIFIER_SHUTDOWN_GRACE_S": "2",
    }
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "classifier_worker"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    connection = None
    try:

        def readiness() -> dict:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).json()
            except httpx.HTTPError:
                return {}

        # Up, models loaded, consuming, and not ready because of the store alone.
        wait_until(
            lambda: (
                readiness().get("error", {}).get("details", {}).get("models", "loading") is None
                and readiness()["error"]["details"]["broker"] is None
            ),
            120,
            "the worker to load its model and connect to RabbitMQ",
            interval=0.3,
        )
        assert readiness()["error"]["details"]["store"]

        job = queued_job(model=MODEL, image=GOLDFINCH)
        connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish(
            "",
            queue,
            JobMessage.for_job(job).encode(),
            pika.BasicProperties(delivery_mode=2, message_id=job.id),
            mandatory=True,
        )

        def waiting_on_the_store() -> bool:
            return any(
                r.get("job_id") == job.id and r["msg"].startswith("store unavailable")
                for r in read_json_lines([log_path])
            )

        wait_until(waiting_on_the_store, 30, "the worker to take the job and meet the outage")
        assert worker.poll() is None
        assert _queue_counts(channel, queue) == (0, 0)  # held by the worker: not lost, not dead

        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
        # The job goes back to the queue for a worker that can reach the store.
        wait_until(lambda: _queue_counts(channel, queue) == (1, 0), 10, "the job to be back in the queue")
        records = read_json_lines([log_path])
        assert not [r for r in records if r["msg"].startswith("poison")]
        assert [r["msg"] for r in records if r["msg"] == "worker stopped"] == ["worker stopped"]
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        if connection is not None and connection.is_open:
            connection.close()
        delete_job_queues(AMQP_URL, queue_name)
