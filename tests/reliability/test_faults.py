"""Faults on the multi-process stack (gateway, results, workers as processes; the real RabbitMQ;
SQLite), each while jobs are being submitted from background threads. For each fault: nothing
accepted is lost, no outcome is written twice, and a refused job does not exist. The broker's own
faults (restart, SIGKILL, memory alarm) are in test_broker_faults.py, on a node of their own.

The figures (accepted/refused/completed/duplicated/lost) are printed and repeated at the end of
the run (tests/reliability/conftest.py).
"""

from __future__ import annotations

import signal
import sqlite3
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pika
import pytest

from classifier_common.domain import Job
from classifier_common.images import Gallery
from classifier_common.store import open_store
from devstack.isolated import AMQP_URL
from devstack.stack import Stack
from tests.reliability.accounting import (
    MODEL,
    Submission,
    Submitter,
    Tally,
    gallery_body,
    read_json_lines,
    report,
    settle_stack,
    wait_until,
)
from tests.utils.jobs import queued_job
from tests.utils.stack import kill_mid_job

pytestmark = [pytest.mark.slow, pytest.mark.rabbitmq]


def _submitter(stack: Stack, images: list[str], **kwargs: object) -> Submitter:
    return Submitter(f"http://127.0.0.1:{stack.gateway_port}", gallery_body(images), **kwargs).start()


def _succeeded_by(stack: Stack, worker: str) -> int:
    return sum(1 for r in read_json_lines([stack.state_dir / f"{worker}.log"]) if r.get("msg") == "job succeeded")


def _delivered_again(stack: Stack, tally: Tally) -> int:
    """Jobs a killed worker held that another worker then received: started again (attempts
    > 1), or found already written and acked without running (killed between write and ack)."""
    logs = read_json_lines(sorted(stack.state_dir.glob("worker-*.log")))
    return tally.redelivered + sum(r["msg"].endswith("delivery acked without running") for r in logs)


def _restart_workers(stack: Stack, names: list[str]) -> None:
    for name in names:
        stack.start_worker(int(name.split("-")[1]))
    stack.wait_ready(timeout=120, names=names)


def test_worker_sigkill_mid_job(stack_factory: Callable[..., Stack], gallery_images: list[str]) -> None:
    stack = stack_factory(workers=2)
    load = _submitter(stack, gallery_images, clients=2, pause_s=0.1)
    wait_until(lambda: _succeeded_by(stack, "worker-0") >= 3, 60, "worker-0 to take jobs")
    # Kill worker-0 while a backlog keeps it busy and it holds a job mid-inference.
    kill_mid_job(stack, ["worker-0"], more_work=lambda: load.burst(40))
    time.sleep(2)  # worker-1 alone while submissions go on; it also takes what worker-0 held
    tally = settle_stack("worker SIGKILL mid-job", stack, load.stop())
    tally.assert_nothing_lost_or_duplicated()
    assert _delivered_again(stack, tally) >= 1, "nothing a killed worker held was delivered again"


def test_all_workers_killed_then_restarted(stack_factory: Callable[..., Stack], gallery_images: list[str]) -> None:
    stack = stack_factory(workers=2)
    load = _submitter(stack, gallery_images, clients=2, pause_s=0.1)
    wait_until(lambda: _succeeded_by(stack, "worker-1") >= 3, 60, "the workers to take jobs")
    kill_mid_job(stack, ["worker-0", "worker-1"], more_work=lambda: load.burst(40))
    accepted_before = load.count(202)
    time.sleep(2)  # no worker at all: the gateway still accepts, the queue holds the jobs
    submissions = load.stop()
    assert load.count(202) > accepted_before, "nothing was accepted while no worker ran"
    _restart_workers(stack, ["worker-0", "worker-1"])
    tally = settle_stack("all workers SIGKILLed, restarted", stack, submissions)
    tally.assert_nothing_lost_or_duplicated()
    assert _delivered_again(stack, tally) >= 1, "nothing a killed worker held was delivered again"


def test_store_locked_for_10s(stack_factory: Callable[..., Stack], gallery_images: list[str]) -> None:
    stack = stack_factory(workers=1)
    load = _submitter(stack, gallery_images, clients=2, pause_s=0.05)
    wait_until(lambda: load.count(202) >= 40, 60, "submissions to flow")
    load.burst(60)  # a backlog: the workers hold messages while the store is locked
    # The test holds SQLite's write lock for 10 s: every write of the gateway and workers fails.
    db = sqlite3.connect(stack.state_dir / "jobs.db", timeout=30, isolation_level=None)
    try:
        db.execute("BEGIN EXCLUSIVE")
        locked_at = time.monotonic()
        refused_before = load.count(503)
        time.sleep(10)
        assert load.count(503) > refused_before, "no submission was refused while the store was locked"
    finally:
        db.execute("ROLLBACK")
        db.close()
    accepted_after = load.count(202)
    wait_until(lambda: load.count(202) >= accepted_after + 10, 60, "submissions to be accepted again")
    recovered_s = min(s.answered_at for s in load.submissions if s.status == 202 and s.answered_at > locked_at + 10)
    tally = settle_stack("store locked 10 s (SQLite BEGIN EXCLUSIVE)", stack, load.stop())
    tally.assert_nothing_lost_or_duplicated()
    dead = _dead_letter_count(stack)
    assert dead == 0, f"{dead} messages were dead-lettered during the store outage"
    # The workers waited the outage out holding their deliveries, rather than spending the
    # broker's delivery limit on requeues.
    logs = read_json_lines(sorted(stack.state_dir.glob("worker-*.log")))
    assert any(r["msg"].startswith("store unavailable") for r in logs), "no worker met the outage"
    assert not [r for r in logs if r["msg"].startswith("job requeued")]
    report(f"  store lock: first 202 {recovered_s - locked_at - 10:.2f} s after the lock was released")


def _dead_letter_count(stack: Stack) -> int:
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        queue = f"{stack.env['CLASSIFIER_QUEUE_NAME']}.default.dead"  # the one pool's dead letters
        return connection.channel().queue_declare(queue, passive=True).method.message_count
    finally:
        connection.close()


def test_gateway_and_results_restarted(stack_factory: Callable[..., Stack], gallery_images: list[str]) -> None:
    # Results from the cache: the workers keep up with a fast submission rate, so that requests
    # are always in flight when the gateway is killed.
    stack = stack_factory(workers=1, CLASSIFIER_RESULT_CACHE="true")
    # Clients retry a try that got no answer with the same Idempotency-Key (the documented contract).
    load = _submitter(stack, gallery_images, clients=4, pause_s=0.005)
    wait_until(lambda: load.count(202) >= 40, 60, "submissions to flow")
    assert stack.kill("gateway", signal.SIGKILL) == -signal.SIGKILL
    assert stack.kill("results", signal.SIGKILL) == -signal.SIGKILL
    # What a gateway killed between writing the record and publishing leaves behind (the kill
    # above lands there only by chance): a queued job without a message, its client unanswered.
    orphan_key = uuid.uuid4().hex
    orphan = _record_without_message(stack, orphan_key, gallery_images[0])
    time.sleep(1)
    stack.start_service("results")
    stack.start_service("gateway")
    stack.wait_ready(timeout=60, names=["gateway", "results"])
    accepted_after = load.count(202)
    wait_until(lambda: load.count(202) >= accepted_after + 20, 60, "submissions to be accepted again")
    # That client retries with its key: the 202 it gets now must mean the job will run.
    with httpx.Client(base_url=f"http://127.0.0.1:{stack.gateway_port}") as client:
        replay = client.post(
            "/v1/jobs", json={"model": MODEL, "image": gallery_images[0]}, headers={"Idempotency-Key": orphan_key}
        )
    assert replay.status_code == 202 and replay.json()["id"] == orphan.id
    assert replay.headers["idempotent-replayed"] == "true"
    tally = settle_stack(
        "gateway and results SIGKILLed, restarted", stack, load.stop() + [_accepted(orphan_key, orphan.id)]
    )
    retried = sum(1 for s in load.submissions if s.tries > 1)
    report(f"  gateway restart: {retried} submissions got no answer at first and were retried with their key")
    tally.assert_nothing_lost_or_duplicated()


def _record_without_message(stack: Stack, key: str, image: str) -> Job:
    store = open_store(stack.env["CLASSIFIER_STORE_URL"])
    try:
        gallery = Gallery(Path(stack.env["CLASSIFIER_GALLERY_DIR"]))
        job = queued_job(model=MODEL, image=image, image_sha256=gallery.sha256(image), idempotency_key=key)
        return store.create(job)
    finally:
        store.close()


def _accepted(key: str, job_id: str) -> Submission:
    return Submission(key=key, status=202, job_id=job_id, tries=2)
