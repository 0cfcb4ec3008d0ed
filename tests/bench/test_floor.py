"""python -m bench.floor measures the least CPU per job outside the workers, part by part, against
a real FastAPI server, the real RabbitMQ and SQLite. Structure only: no timing is asserted."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from bench.floor import Pacer, broker_parts, store_part
from devstack.isolated import MANAGEMENT
from tests.utils.modules import run_module

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]

PARTS = ("http server", "http client", "broker clients", "rabbitmq", "store")


def _floor_queues() -> list[str]:
    """The floor's queues on the local RabbitMQ."""
    queues = httpx.get(f"{MANAGEMENT}/queues", auth=("guest", "guest"), timeout=10).json()
    return [queue["name"] for queue in queues if queue["name"].startswith("classifier.floor.")]


def test_floor_prints_every_part_and_the_ceiling(seeded: tuple[Path, Path], repo: Path) -> None:
    stdout = run_module(
        repo, "bench.floor", "--duration", "1", "--messages", "20", "--w", "20",
        "--gallery-dir", str(seeded[1]),
    )  # fmt: skip
    parts = {}
    for name in PARTS:
        found = re.search(rf"^{name} +([0-9.]+) ms CPU per job$", stdout, re.M)
        assert found, stdout
        parts[name] = float(found.group(1))
    assert all(ms > 0 for ms in parts.values()), parts
    outside = float(re.search(r"^outside workers +([0-9.]+) ms", stdout, re.M).group(1))
    assert outside == pytest.approx(sum(parts.values()), abs=0.02)
    ceiling = float(re.search(r"can reach at most ([0-9.]+) here", stdout).group(1))
    assert ceiling == pytest.approx(20 / (20 + outside), abs=0.006)
    assert _floor_queues() == []  # its queues are deleted again


def test_floor_at_a_rate_drives_every_part_at_it(seeded: tuple[Path, Path], repo: Path) -> None:
    stdout = run_module(
        repo, "bench.floor", "--duration", "1", "--messages", "20", "--w", "20", "--rate", "40",
        "--gallery-dir", str(seeded[1]),
    )  # fmt: skip
    assert "each part driven at 40 jobs/s" in stdout
    for name in PARTS:
        assert re.search(rf"^{name} +[0-9.]+ ms CPU per job$", stdout, re.M), stdout
    # At 40 jobs/s, 20 messages and 20 store jobs are spread over at least 19 periods each.
    for part in (lambda: broker_parts(20, 1000, rate=40), lambda: store_part(20, rate=40)):
        started = time.monotonic()
        part()
        assert time.monotonic() - started >= 19 / 40


def test_a_rate_of_zero_is_refused(repo: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.floor", "--rate", "0"], cwd=repo, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "--rate must be above 0" in done.stderr


def test_a_pacer_spaces_calls_and_does_not_catch_up_in_a_burst(monkeypatch: pytest.MonkeyPatch) -> None:
    pacer = Pacer(50.0)  # 20 ms apart
    started = time.monotonic()
    for _ in range(5):
        pacer.wait()
    assert time.monotonic() - started >= 4 * 0.02
    time.sleep(0.1)  # five periods behind
    behind = time.monotonic()
    pacer.wait()  # at once
    pacer.wait()  # a whole period later, not at once
    assert time.monotonic() - behind >= 0.02
    unpaced = Pacer(None)

    def no_sleep(_seconds: float) -> None:
        raise AssertionError("a pacer without a rate slept")

    monkeypatch.setattr(time, "sleep", no_sleep)
    for _ in range(3):
        unpaced.wait()
