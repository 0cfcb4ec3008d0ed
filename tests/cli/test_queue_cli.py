"""`classifier status` shows a queued job's place ("2 jobs ahead · about 2 s"), and `classifier
stats` prints each pool of workers, through the installed entry point, against a gateway and
results service with no worker (so jobs stay queued) over either store."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from classifier_common.store import JobStore
from tests.cli.conftest import CLASSIFIER
from tests.utils.jobs import GOLDFINCH
from tests.utils.queue_system import (
    BACKENDS,
    open_test_store,
    serving,
    settings_for,
    system_without_workers,
    worked,
    worker_alive,
)

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[JobStore]:
    opened = open_test_store(request.param, tmp_path)
    yield opened
    opened.close()


@pytest.fixture
def busy(seeded, store: JobStore) -> Iterator[tuple[str, list[str]]]:
    """A server whose pool finished 100 jobs in the last 50 s (running 45 s of them: 2.2 jobs/s
    while busy), with one worker alive and three jobs queued: (its URL, the queued jobs' ids)."""
    worked(store, 100, over_s=50.0, failed=2, dead_lettered=1)
    worker_alive(store, ["efficientnet_lite0"])
    with serving(system_without_workers(settings_for(seeded), store)) as url:
        ids = [
            httpx.post(f"{url}/v1/jobs", json={"model": "efficientnet_lite0", "image": GOLDFINCH}).json()["id"]
            for _ in range(3)
        ]
        yield url, ids


def _runner(url: str) -> Run:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "CLASSIFIER_URL": url, "COLUMNS": "80"}
        return subprocess.run(
            [str(CLASSIFIER), *args], env=env, capture_output=True, text=True, timeout=60, check=False
        )

    return run


def test_status_of_a_queued_job_says_how_many_are_ahead(busy) -> None:
    url, ids = busy
    run = _runner(url)
    first = run("status", ids[0])
    assert first.returncode == 0, first.stderr
    assert re.search(r"queued · next in line · about 1 s", first.stdout), first.stdout
    last = run("status", ids[2])
    assert re.search(r"queued · 2 jobs ahead · about [12] s", last.stdout), last.stdout
    as_json = json.loads(run("status", ids[2], "--json").stdout)
    assert as_json["queue"]["ahead"] == 2


def test_a_wait_that_times_out_says_where_the_job_stands(busy) -> None:
    url, ids = busy
    waited = _runner(url)("status", ids[1], "--wait", "--timeout", "1")
    assert waited.returncode == 5, waited.stderr
    assert re.search(r"still queued \(1 job ahead · about \d s\)", " ".join(waited.stderr.split())), waited.stderr


def test_stats_prints_each_pool(busy) -> None:
    url, _ = busy
    run = _runner(url)
    table = run("stats")
    assert table.returncode == 0, table.stderr
    assert "Pools (last 5 min)" in table.stdout
    rows = {}
    for line in table.stdout.splitlines():
        cells = [cell.strip() for cell in line.strip("│ ").split("│")]
        if len(cells) == 2:
            rows[cells[0]] = cells[1]
    assert rows["backlog"] == "3 (3 queued, 0 running)"
    assert (rows["ready messages"], rows["unacked messages"], rows["consumers"]) == ("3", "0", "0")
    assert rows["ready workers"] == "1"
    assert rows["jobs/s"] == "0.33"  # 100 jobs over the 5 minutes
    assert rows["jobs/s while busy"] == "2.22"  # over the 45 s they ran
    assert rows["latency p95"] == "1.00 s"
    assert (rows["finished"], rows["failed"], rows["dead-lettered"]) == ("100", "2", "1")
    assert max(len(line) for line in table.stdout.splitlines()) <= 80  # fits a plain terminal

    as_json = json.loads(run("stats", "--json", "--window", "600").stdout)
    assert as_json["window_s"] == 600
    api = httpx.get(f"{url}/v1/stats", params={"window_s": 600}).json()

    def steady(stats: dict) -> list[dict]:  # what does not move between two requests
        return [{k: v for k, v in pool.items() if k != "jobs_per_s"} for pool in stats["pools"]]

    assert set(as_json) == set(api) and steady(as_json) == steady(api)


def test_stats_with_a_window_out_of_range_exits_3(busy) -> None:
    url, _ = busy
    refused = _runner(url)("stats", "--window", "5")
    assert refused.returncode == 3
    assert "window_s" in refused.stderr and "HTTP 422" in refused.stderr
