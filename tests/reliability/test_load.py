"""Load and back-pressure on the multi-process stack (real RabbitMQ, SQLite).

- 2,000 submissions from 50 concurrent clients with two workers running: nothing lost, nothing
  written twice, no 5xx but deliberate 503/429. The submit latency percentiles are printed, not
  asserted (speed is measured by bench/, never by timed tests). The results come from the
  result cache after the first of each of the 41 gallery images: this measures the submission
  path and the bookkeeping, not inference.
- Back-pressure: with no worker and a small CLASSIFIER_QUEUE_MAX_LENGTH, a burst turns into 429
  with Retry-After beyond the bound, and the queue never holds more than the bound (plus one
  message per publish in flight, RabbitMQ's known slack); what was accepted all runs once a
  worker starts.
"""

from __future__ import annotations

from collections.abc import Callable

import pika
import pytest

from classifier_common.broker.rabbitmq import PUBLISH_WINDOW
from devstack.isolated import AMQP_URL
from devstack.stack import Stack
from tests.reliability.accounting import Submitter, gallery_body, percentiles, report, settle_stack

pytestmark = [pytest.mark.slow, pytest.mark.rabbitmq]

SUBMISSIONS = 2_000
CLIENTS = 50
QUEUE_BOUND = 20


def test_2000_submissions_from_50_clients(stack_factory: Callable[..., Stack], gallery_images: list[str]) -> None:
    stack = stack_factory(workers=2, CLASSIFIER_RESULT_CACHE="true")
    load = Submitter(
        f"http://127.0.0.1:{stack.gateway_port}",
        gallery_body(gallery_images),
        clients=CLIENTS,
        pause_s=0,
        limit=SUBMISSIONS,
        max_tries=1,  # no retries: every try counts
    ).start()
    submissions = load.join(timeout=240)
    assert len(submissions) == SUBMISSIONS
    latencies = [s.latency_s for s in submissions if s.latency_s is not None]
    cuts = percentiles(latencies)
    server_errors = [s for s in submissions if s.status is not None and s.status >= 500 and s.status != 503]
    span = max(s.answered_at for s in submissions) - min(s.answered_at - s.latency_s for s in submissions)
    report(
        f"LOAD {SUBMISSIONS} submissions from {CLIENTS} clients: "
        f"submit latency p50={cuts['p50'] * 1000:.0f} ms p95={cuts['p95'] * 1000:.0f} ms "
        f"p99={cuts['p99'] * 1000:.0f} ms, {SUBMISSIONS / span:.0f} submissions/s, "
        f"5xx other than 503: {len(server_errors)}"
    )
    tally = settle_stack(f"load {SUBMISSIONS} x {CLIENTS} clients", stack, submissions, timeout=180)
    assert server_errors == []
    tally.assert_nothing_lost_or_duplicated()


def _ready_messages(queue: str) -> int:
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        return connection.channel().queue_declare(queue, passive=True).method.message_count
    finally:
        connection.close()


def test_a_bounded_backlog_turns_into_429(stack_factory: Callable[..., Stack], gallery_images: list[str]) -> None:
    stack = stack_factory(workers=0, CLASSIFIER_QUEUE_MAX_LENGTH=str(QUEUE_BOUND))
    load = Submitter(
        f"http://127.0.0.1:{stack.gateway_port}",
        gallery_body(gallery_images),
        clients=10,
        pause_s=0,
        limit=200,
        max_tries=1,
    ).start()
    submissions = load.join(timeout=120)
    accepted = [s for s in submissions if s.status == 202]
    refused = [s for s in submissions if s.status == 429]
    assert len(accepted) + len(refused) == len(submissions), {s.status for s in submissions}
    # RabbitMQ's reject-publish refuses once the ready count is over the bound; each publisher
    # channel may have had one message in flight at that moment.
    assert QUEUE_BOUND <= len(accepted) <= QUEUE_BOUND + PUBLISH_WINDOW
    assert all(s.retry_after is not None and int(s.retry_after) > 0 for s in refused)
    assert all('"queue_full"' in s.body for s in refused)
    depth = _ready_messages(f"{stack.env['CLASSIFIER_QUEUE_NAME']}.default")  # the one pool's queue
    assert depth == len(accepted)
    report(
        f"BACK-PRESSURE bound={QUEUE_BOUND}: 200 submissions -> {len(accepted)} accepted, "
        f"{len(refused)} refused with 429 + Retry-After; queue depth {depth}"
    )
    stack.start_worker(0)
    stack.wait_ready(timeout=120, names=["worker-0"])
    settle_stack(f"back-pressure (queue bound {QUEUE_BOUND})", stack, submissions).assert_nothing_lost_or_duplicated()
