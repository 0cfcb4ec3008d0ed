"""bench.threads: each thread's CPU and context switches, named as Python names them."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from bench.procstats import thread_times
from bench.threads import py_spy, python_names, report, usage

# Two threads of one pool spin, one other thread sleeps; the main thread waits.
CHILD = """
import threading, time
def spin():
    while True:
        sum(range(1000))
def rest():
    while True:
        time.sleep(0.01)
for i in range(2):
    threading.Thread(target=spin, name=f"spin_{i}", daemon=True).start()
threading.Thread(target=rest, name="resting", daemon=True).start()
print("ready", flush=True)
time.sleep(600)
"""


@pytest.fixture
def child():  # noqa: ANN201
    proc = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


def test_each_threads_cpu_and_switches_are_counted_under_its_python_name(child: int) -> None:
    spy = py_spy()
    assert spy is not None, "py-spy is installed by make setup"
    names = python_names(child, spy)
    assert sorted(names.values()) == ["MainThread", "resting", "spin_0", "spin_1"]
    before = thread_times(child)
    time.sleep(1.5)
    rows = {u.name: u for u in usage(before, thread_times(child), names)}
    assert set(rows) == {"MainThread", "resting", "spin_*"}
    spinning, resting = rows["spin_*"], rows["resting"]
    assert spinning.threads == 2
    assert spinning.cpu_s > 0.5  # two threads sharing the GIL keep about one core busy
    assert resting.cpu_s < 0.1 and resting.voluntary >= 50  # about 150 sleeps of 10 ms
    assert rows["MainThread"].cpu_s < 0.05
    lines = report("child", list(rows.values()), jobs=10)
    assert lines[0].startswith("child: ") and lines[1].lstrip().startswith("spin_*")
    assert lines[1].endswith(", 2 threads")


def test_without_py_spy_threads_keep_the_kernels_names(child: int) -> None:
    assert python_names(child, None) == {}
    rows = usage(thread_times(child), thread_times(child), {})
    assert {u.name for u in rows} == {"python"}
    assert rows[0].threads == 4
