"""bench.procstats finds the processes a row meters by their command line."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

from bench.procstats import SHARED, Meter, find_pid


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


def test_a_shared_process_peak_is_the_peak_while_metered() -> None:
    # A process that once held 200 MiB and let it go: its lifetime peak stays, a shared one's is reset.
    code = (
        "import sys, time\n"
        "block = bytearray(200 * 1024 * 1024)\n"
        "block[::4096] = b'x' * len(block[::4096])\n"
        "del block\n"
        "print('freed', flush=True)\n"
        "time.sleep(60)\n"
    )
    processes = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        for process in processes:
            assert process.stdout is not None and process.stdout.readline().strip() == "freed"
        own, shared = processes
        meter = Meter({"own": own.pid, f"broker{SHARED}": shared.pid})
        meter.start()
        usages = {usage.name: usage for usage in meter.stop()[0]}
    finally:
        for process in processes:
            process.kill()
            process.wait()
    assert usages["own"].peak_rss_mb > 200
    assert usages[f"broker{SHARED}"].peak_rss_mb < 100
    assert usages[f"broker{SHARED}"].peak_rss_mb >= usages[f"broker{SHARED}"].rss_mb > 0
