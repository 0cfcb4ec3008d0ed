"""The gateway runs its publishing connection to RabbitMQ on its own event loop: a submission's
message is sent, and its confirm settles, with no thread of the publisher's own in between."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import pika
import pytest
from fastapi.testclient import TestClient

from classifier_common.config import Settings
from classifier_gateway.main import create_app
from devstack.isolated import AMQP_URL
from devstack.stack import delete_job_queues

pytestmark = pytest.mark.rabbitmq

BODY = {"model": "efficientnet_lite0", "image": "n01531178_goldfinch.JPEG"}


def test_the_gateways_submissions_publish_on_its_event_loop(tmp_path: Path, seeded: tuple[Path, Path]) -> None:
    queue = f"test.{uuid.uuid4().hex[:8]}"
    settings = Settings(
        broker_url=AMQP_URL,
        queue_name=queue,
        store_url=f"sqlite:///{tmp_path}/jobs.db",
        models_dir=seeded[0],
        gallery_dir=seeded[1],
        log_format="text",
    )
    try:
        with TestClient(create_app(settings)) as client:
            publisher = client.app.state.publisher
            deadline = time.monotonic() + 10
            while (pipeline := publisher._pipeline) is None or pipeline.loop is None or not pipeline.is_open:  # noqa: SLF001
                assert time.monotonic() < deadline, "the publishing connection never moved to the event loop"
                time.sleep(0.05)
            responses = [client.post("/v1/jobs", json=BODY) for _ in range(5)]
            assert [r.status_code for r in responses] == [202] * 5
            assert publisher._pipeline is pipeline  # noqa: SLF001 - the same connection published them all
            assert pipeline.loop.is_running()
            assert not any(thread.name == "broker-publisher" for thread in threading.enumerate())
        connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
        try:
            ready = connection.channel().queue_declare(settings.queue_for_pool(settings.pool), passive=True)
        finally:
            connection.close()
        assert ready.method.message_count == 5
    finally:
        delete_job_queues(AMQP_URL, queue)
