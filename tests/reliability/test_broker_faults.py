"""Faults of the broker itself, while clients submit: the multi-process stack (gateway, results,
workers as processes; SQLite) on a RabbitMQ node of the test's own, which the test restarts,
kills with SIGKILL and alarms (the machine's shared broker is never touched). For each fault:
nothing accepted is lost, no outcome is written twice, a refused job does not exist, and the
time to recover is reported (docs/guarantees.md, "Figures").

CI runs them short (a few seconds of fault, small backlogs). ``RELIABILITY_FULL=1`` runs the sizes
docs/guarantees.md reports (``make reliability-figures``): a 10 s outage after SIGKILL, a 60 s
memory alarm over a backlog, 5,000 jobs backlogged then drained.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from devstack.stack import Stack
from tests.reliability.accounting import (
    Submission,
    Submitter,
    gallery_body,
    mixed_body,
    read_json_lines,
    report,
    settle_stack,
    wait_until,
)
from tests.utils.rabbitmq_node import RabbitNode

pytestmark = [pytest.mark.slow, pytest.mark.rabbitmq]

FULL = os.environ.get("RELIABILITY_FULL") == "1"
SIGKILL_DOWN_S = 10.0 if FULL else 2.0
ALARM_S = 60.0 if FULL else 8.0  # over the publisher's 5 s blocked-connection timeout: 503s
ALARM_BACKLOG = 2_000 if FULL else 60
BACKLOG = 5_000 if FULL else 200


def _on(node: RabbitNode, stack_factory: Callable[..., Stack], workers: int, **env: str) -> Stack:
    return stack_factory(workers=workers, CLASSIFIER_BROKER_URL=node.url, **env)


def _submitter(stack: Stack, body: Callable[[int], dict], **kwargs: object) -> Submitter:
    return Submitter(f"http://127.0.0.1:{stack.gateway_port}", body, **kwargs).start()


def _first_202_after(submissions: list[Submission], moment: float) -> float:
    """Seconds from ``moment`` (time.monotonic()) to the first 202 answered after it."""
    return min(s.answered_at for s in submissions if s.status == 202 and s.answered_at > moment) - moment


def _succeeded(stack: Stack) -> int:
    with sqlite3.connect(f"file:{stack.state_dir / 'jobs.db'}?mode=ro", uri=True, timeout=10) as db:
        return db.execute("SELECT count(*) FROM jobs WHERE status = 'succeeded'").fetchone()[0]


def _backlog(stack: Stack, n: int, clients: int = 20) -> list[Submission]:
    """``n`` submissions from ``clients`` at once, answered before this returns."""
    return (
        Submitter(
            f"http://127.0.0.1:{stack.gateway_port}",
            gallery_body(sorted(p.name for p in Path(stack.env["CLASSIFIER_GALLERY_DIR"]).glob("*.JPEG"))),
            clients=clients,
            pause_s=0,
            limit=n,
        )
        .start()
        .join(timeout=max(120, n / 10))
    )


def test_broker_restart_during_submission(
    private_broker: RabbitNode, stack_factory: Callable[..., Stack], gallery_images: list[str]
) -> None:
    stack = _on(private_broker, stack_factory, workers=1)
    load = _submitter(stack, gallery_body(gallery_images), clients=2, pause_s=0.05)
    wait_until(lambda: load.count(202) >= 40, 60, "submissions to flow")
    private_broker.stop()
    refused_before = load.count(503)
    wait_until(lambda: load.count(503) > refused_before, 30, "the gateway to refuse while the broker is down")
    private_broker.start()
    back_at = time.monotonic()
    accepted_after = load.count(202)
    # The gateway and the workers reconnect by themselves.
    wait_until(lambda: load.count(202) >= accepted_after + 10, 60, "submissions to be accepted again")
    tally = settle_stack("broker restart (rabbitmqctl stop, then start)", stack, load.stop())
    tally.assert_nothing_lost_or_duplicated()
    assert tally.refused > 0
    report(f"  broker restart: first 202 {_first_202_after(load.submissions, back_at):.2f} s after the node was up")


def test_broker_sigkill_mid_mixed_load(
    private_broker: RabbitNode,
    stack_factory: Callable[..., Stack],
    gallery_images: list[str],
    seeded: tuple[Path, Path],
) -> None:
    """kill -9 of the broker's VM while gallery jobs and uploads are submitted and a backlog keeps
    the workers busy: confirmed messages are on disk, held ones come back on the restart."""
    stack = _on(private_broker, stack_factory, workers=2)
    load = _submitter(stack, mixed_body(gallery_images, seeded[1]), clients=4, pause_s=0.02)
    wait_until(lambda: load.count(202) >= 40, 60, "submissions to flow")
    load.burst(40)  # a backlog: the workers hold messages when the broker dies
    killed_at = time.monotonic()
    private_broker.kill()
    refused_before = load.count(503)
    wait_until(lambda: load.count(503) > refused_before, 30, "the gateway to refuse while the broker is dead")
    time.sleep(max(0.0, SIGKILL_DOWN_S - (time.monotonic() - killed_at)))
    private_broker.start()
    back_at = time.monotonic()
    accepted_after = load.count(202)
    wait_until(lambda: load.count(202) >= accepted_after + 20, 90, "submissions to be accepted again")
    tally = settle_stack("broker SIGKILL mid mixed gallery+upload load", stack, load.stop(), timeout=180)
    drained_at = time.monotonic()
    tally.assert_nothing_lost_or_duplicated()
    report(
        f"  broker SIGKILL: down {back_at - killed_at:.1f} s (kill to node up); first 202 "
        f"{_first_202_after(load.submissions, back_at):.2f} s after the node was up; every accepted job "
        f"finished {drained_at - back_at:.1f} s after it"
    )


def test_memory_alarm_with_a_backlog(
    private_broker: RabbitNode, stack_factory: Callable[..., Stack], gallery_images: list[str]
) -> None:
    """A memory alarm stops publishing (the gateway answers 503) but not consuming: the workers go
    on draining the backlog through the alarm, their acks flowing, nothing redelivered."""
    stack = _on(private_broker, stack_factory, workers=2)
    load = _submitter(stack, gallery_body(gallery_images), clients=2, pause_s=0.05)
    wait_until(lambda: load.count(202) >= 20, 60, "submissions to flow")
    backlog = _backlog(stack, ALARM_BACKLOG)
    done_before = _succeeded(stack)
    with private_broker.memory_alarm():
        alarm_at = time.monotonic()
        refused_before = load.count(503)
        time.sleep(ALARM_S)
        done_during = _succeeded(stack) - done_before
        assert load.count(503) > refused_before, "no submission was refused during the alarm"
    cleared_at = time.monotonic()
    accepted_after = load.count(202)
    wait_until(lambda: load.count(202) >= accepted_after + 10, 60, "submissions to be accepted again")
    tally = settle_stack(f"broker memory alarm {ALARM_S:.0f} s over a backlog", stack, load.stop() + backlog, 600)
    drained_at = time.monotonic()
    tally.assert_nothing_lost_or_duplicated()
    assert done_during > 0, "no job finished during the alarm: the workers' acks stalled"
    # A worker whose consuming connection is blocked loses it after 5 s; what it held comes back
    # (acked without running when its outcome was written, run again when not).
    logs = read_json_lines(sorted(stack.state_dir.glob("worker-*.log")))
    dropped = [r["msg"] for r in logs if r["msg"].startswith("consumer connection to RabbitMQ closed")]
    assert dropped == [], dropped[:3]
    assert not [r for r in logs if r["msg"].endswith("delivery acked without running")]
    assert tally.redelivered == 0, "deliveries came back: a worker's consuming connection was dropped"
    report(
        f"  memory alarm: {done_during} jobs finished during the {cleared_at - alarm_at:.0f} s alarm "
        f"({done_during / (cleared_at - alarm_at):.1f} jobs/s), none redelivered; first 202 "
        f"{_first_202_after(load.submissions, cleared_at):.2f} s after it cleared; every accepted job finished "
        f"{drained_at - cleared_at:.1f} s after it"
    )


def test_backlog_then_drained(private_broker: RabbitNode, stack_factory: Callable[..., Stack]) -> None:
    stack = _on(private_broker, stack_factory, workers=0)
    queued_at = time.monotonic()
    submissions = _backlog(stack, BACKLOG)
    queued_s = time.monotonic() - queued_at
    assert sum(s.status == 202 for s in submissions) == BACKLOG
    for i in range(2):
        stack.start_worker(i)
    stack.wait_ready(timeout=120, names=["worker-0", "worker-1"])
    ready_at = time.monotonic()
    tally = settle_stack(f"{BACKLOG:,} jobs backlogged, then drained by 2 workers", stack, submissions, 1_800)
    drained_s = time.monotonic() - ready_at
    tally.assert_nothing_lost_or_duplicated()
    report(
        f"  backlog: {BACKLOG:,} queued in {queued_s:.1f} s, drained in {drained_s:.1f} s "
        f"({BACKLOG / drained_s:.0f} jobs/s) once the workers were ready"
    )
