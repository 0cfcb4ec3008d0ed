"""python -m bench.floor measures the least CPU per job outside the workers, part by part, against
a real FastAPI server, the real RabbitMQ and SQLite. Structure only: no timing is asserted."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

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
