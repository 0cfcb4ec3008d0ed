"""The claim check through the real RabbitMQ, as separate processes: a large upload's queue
message carries a reference to the bytes kept in the job store, a small one carries the bytes,
and a worker classifies both."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import pika
import pytest
from PIL import Image

from classifier_common.messages import decode
from devstack.isolated import AMQP_URL
from tests.utils.api import wait_for_job
from tests.utils.stack import running_stack

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]

GOLDFINCH = "n01531178_goldfinch.JPEG"
THRESHOLD = 200 * 1024  # between the gallery JPEG (112 KiB) and the same photo as PNG (313 KiB)


def _queued_bodies(queue: str, count: int) -> list[bytes]:
    """The bodies of the first ``count`` messages in ``queue``, left in it (given back unacked)."""
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        channel = connection.channel()
        bodies = []
        for _ in range(count):
            method, _, body = channel.basic_get(queue, auto_ack=False)
            assert method is not None, f"{len(bodies)} messages in {queue}, expected {count}"
            bodies.append(body)
        return bodies
    finally:
        connection.close()  # the unacked messages go back to the queue


def test_a_large_upload_goes_through_the_store_and_its_message_is_small(
    tmp_path: Path, seeded: tuple[Path, Path]
) -> None:
    jpeg = (seeded[1] / GOLDFINCH).read_bytes()
    out = io.BytesIO()
    Image.open(io.BytesIO(jpeg)).save(out, "PNG")
    png = out.getvalue()
    assert len(jpeg) <= THRESHOLD < len(png)

    with running_stack(
        tmp_path,
        seeded,
        workers=0,  # the messages wait in the queue until the test has looked at them
        CLASSIFIER_MODELS="efficientnet_lite0",
        CLASSIFIER_CLAIM_CHECK_BYTES=str(THRESHOLD),
    ) as stack:
        gateway = httpx.Client(base_url=f"http://127.0.0.1:{stack.gateway_port}", timeout=30)
        results = httpx.Client(base_url=f"http://127.0.0.1:{stack.results_port}", timeout=30)
        ids = {}
        for name, data in (("large", png), ("small", jpeg)):
            response = gateway.post(
                "/v1/jobs", files={"file": (f"bird-{name}", data)}, data={"model": "efficientnet_lite0"}
            )
            assert response.status_code == 202, response.text
            ids[name] = response.json()["id"]

        large_body, small_body = _queued_bodies(f"{stack.env['CLASSIFIER_QUEUE_NAME']}.default", 2)  # the one pool
        assert len(large_body) < 1024 < len(png) and len(small_body) > len(jpeg)
        large, small = decode(large_body), decode(small_body)
        assert (large.job_id, large.upload_ref, large.upload_bytes()) == (ids["large"], ids["large"], None)
        assert (small.job_id, small.upload_ref, small.upload_bytes()) == (ids["small"], None, jpeg)

        stack.start_worker(0)
        for name in ("large", "small"):
            job = wait_for_job(results, f"/v1/jobs/{ids[name]}", timeout=120)
            assert job["status"] == "succeeded", job
            assert job["result"]["predictions"][0]["label"] == "goldfinch"
