"""Row (7)'s FastAPI + Celery app classifies through the real RabbitMQ and Redis with the
worker's model code, answers the system's job API (so the same clients drive it), and removes its
queue from the shared broker afterwards."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pika
import pytest

from bench import servers
from bench.load import Connection
from bench.scenarios import submit_upload, upload_body, wait_succeeded

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]


@pytest.fixture(scope="module", autouse=True)
def _redis() -> None:
    why = servers.redis_missing()
    if why:
        pytest.skip(why)


def _queue_exists(name: str) -> bool:
    connection = pika.BlockingConnection(pika.URLParameters("amqp://guest:guest@127.0.0.1:5672/%2F"))
    try:
        connection.channel().queue_declare(name, passive=True)
        return True
    except pika.exceptions.ChannelClosedByBroker:
        return False
    finally:
        if connection.is_open:
            connection.close()


def test_a_job_goes_through_celery_and_redis(seeded: tuple[Path, Path], tmp_path: Path) -> None:
    models_dir, gallery_dir = seeded
    env = {
        "CLASSIFIER_MODELS_DIR": str(models_dir),
        "CLASSIFIER_GALLERY_DIR": str(gallery_dir),
        "CLASSIFIER_RUNTIME": "torch",
    }
    port, queue = servers.free_port(), f"bench.celery.test-{uuid.uuid4().hex[:8]}"
    with servers.celery_app(sys.executable, port, 1, 1, env, tmp_path / "celery.log", queue=queue) as pids:
        assert {"fastapi front", "celery worker"} <= set(pids)
        connection = Connection(f"http://127.0.0.1:{port}")
        images = [("n01531178_goldfinch.JPEG", (gallery_dir / "n01531178_goldfinch.JPEG").read_bytes())]
        location = submit_upload(connection, *upload_body("efficientnet_lite0", images, 0, b"celery-test"))
        assert location.startswith("/v1/jobs/")
        view = wait_succeeded(connection, location)
        assert view["result"]["predictions"][0]["label"] == "goldfinch"
        assert view["result"]["cached"] is False
        assert _queue_exists(queue)  # its own queue, on the shared broker
    assert not _queue_exists(queue)
