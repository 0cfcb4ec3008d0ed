"""The multi-process topology (devstack) for a test: up and ready over the seeded models, its
processes' log records and metrics."""

from __future__ import annotations

import contextlib
import json
import signal
import sqlite3
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from devstack.isolated import isolated_stack
from devstack.stack import Stack


@contextlib.contextmanager
def running_stack(
    tmp: Path, seeded: tuple[Path, Path], workers: int = 2, nginx: bool = False, pools: str = "", **env: str
) -> Iterator[Stack]:
    """An isolated stack over the seeded models and gallery, up and ready; stopped and its queues
    deleted afterwards. With ``pools``, ``workers`` workers per pool."""
    models_dir, gallery_dir = seeded
    stack = isolated_stack(
        tmp,
        workers=workers,
        nginx=nginx,
        pools=pools,
        CLASSIFIER_MODELS_DIR=str(models_dir),
        CLASSIFIER_GALLERY_DIR=str(gallery_dir),
        **env,
    )
    try:
        stack.up(timeout=120)
        yield stack
    finally:
        stack.down()
        stack.delete_queues()


def submit_gallery_jobs(stack: Stack, model: str, count: int) -> tuple[list[str], httpx.Client]:
    """``count`` jobs of ``model`` on a gallery photo, submitted to the stack's gateway one by one:
    (their ids, a client of the results service to follow them with)."""
    gateway = httpx.Client(base_url=f"http://127.0.0.1:{stack.gateway_port}", timeout=10)
    ids = []
    for _ in range(count):
        response = gateway.post("/v1/jobs", json={"model": model, "image": "n01440764_tench.JPEG"})
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    return ids, httpx.Client(base_url=f"http://127.0.0.1:{stack.results_port}", timeout=40)


def running_jobs(stack: Stack) -> set[tuple[str, str, int]]:
    """The jobs the stack's SQLite store holds as running: (id, started_at, attempts)."""
    with contextlib.closing(sqlite3.connect(f"file:{stack.state_dir / 'jobs.db'}?mode=ro", uri=True)) as db:
        rows = db.execute("SELECT id, started_at, attempts FROM jobs WHERE status = 'running'").fetchall()
    return set(rows)


def kill_mid_job(stack: Stack, names: list[str], more_work: Callable[[], object]) -> None:
    """SIGKILL the workers ``names`` while one of them holds a job it started. Each try first
    calls ``more_work`` (it submits a backlog), then stops them (SIGSTOP): a job still running,
    unchanged, 3 s later is theirs (any other worker finishes a job well within that). A stop
    that lands between jobs lets them go on, and the next try comes with more work, so a fast
    machine that drained everything cannot leave the kill without a job to interrupt."""
    procs = [stack.procs[name] for name in names]
    for _ in range(20):
        more_work()
        for proc in procs:
            proc.send_signal(signal.SIGSTOP)
        before = running_jobs(stack)
        time.sleep(3)
        if before & running_jobs(stack):
            for name in names:
                assert stack.kill(name, signal.SIGKILL) == -signal.SIGKILL
            return
        for proc in procs:
            proc.send_signal(signal.SIGCONT)
    pytest.fail(f"{names} never held a started job when stopped")


def log_records(stack: Stack, name_prefix: str) -> list[dict]:
    records = []
    for path in stack.state_dir.glob(f"{name_prefix}*.log"):
        for line in path.read_text().splitlines():
            if line.startswith("{"):
                records.append(json.loads(line))
    return records


def metric_value(url: str, name: str, labels: dict[str, str] | None = None) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels`` (Prometheus text format)."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
        text = response.read().decode()
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in (labels or {}).items()):
                total += sample.value
    return total
