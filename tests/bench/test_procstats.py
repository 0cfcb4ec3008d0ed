"""bench.procstats finds the processes a row meters by their command line."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

from bench.procstats import find_pid


def test_the_longest_running_match_is_found() -> None:
    # The shared RabbitMQ started with the machine; a test's own node, started later, has the
    # same program and must not be metered in its place.
    marker = f"bench-marker-{uuid.uuid4().hex}"
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)", marker]
    older = subprocess.Popen(sleeper)
    try:
        time.sleep(0.05)  # start times count in clock ticks (10 ms)
        newer = subprocess.Popen(sleeper)
        try:
            assert find_pid(marker) == older.pid
        finally:
            newer.kill()
            newer.wait()
    finally:
        older.kill()
        older.wait()
    assert find_pid(marker) is None
