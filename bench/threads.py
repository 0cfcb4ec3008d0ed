"""Where the system's CPU goes, thread by thread: the benchmark's row 3-sat (clients that upload
and wait, the same isolated stack) with each process's CPU split by its threads.

    python -m bench.threads                   # 16 clients, 20 s measured, 2 workers
    python -m bench.threads --duration 10 --set CLASSIFIER_MAX_BATCH=1

For every process of the stack (and RabbitMQ's, as one), each thread's CPU ms per job (user and
system) and its voluntary and involuntary context switches per job, from /proc/<pid>/task. A
thread is named by its Python name (``broker-publisher``, ``long-poll``, ``blocking_3``...) when
``py-spy`` is on the PATH or beside this interpreter (``make setup`` installs it; it reads the
processes, which needs the right to trace them), else by the name the kernel has for it.
Threads of one pool (``blocking_0``, ``blocking_1``...) are summed under the pool's name.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from bench import servers
from bench.images import load_gallery
from bench.load import closed_loop
from bench.procstats import ThreadTimes, thread_times
from bench.scenarios import system_job

MODEL = "efficientnet_lite0"
WARMUP_S = 5.0


def py_spy() -> str | None:
    """The py-spy executable, if any: on the PATH or beside this interpreter (the venv's bin)."""
    beside = Path(sys.executable).parent / "py-spy"
    return shutil.which("py-spy") or (str(beside) if beside.is_file() else None)


def python_names(pid: int, spy: str | None) -> dict[int, str]:
    """Thread id -> the thread's Python name, from ``py-spy dump``; {} without py-spy, or when it
    cannot read the process."""
    if spy is None:
        return {}
    try:
        out = subprocess.run([spy, "dump", "--json", "--pid", str(pid)], capture_output=True, text=True, timeout=30)
        threads = json.loads(out.stdout) if out.returncode == 0 else []
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return {}
    return {t["os_thread_id"]: t["thread_name"] for t in threads if t.get("os_thread_id") and t.get("thread_name")}


def pool_name(name: str) -> str:
    """``blocking_3`` -> ``blocking_*``: threads of one pool are summed."""
    return re.sub(r"_\d+$", "_*", name)


@dataclass
class Usage:
    name: str
    threads: int = 0
    user_s: float = 0.0
    system_s: float = 0.0
    voluntary: int = 0
    involuntary: int = 0

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.system_s


def usage(before: dict[int, ThreadTimes], after: dict[int, ThreadTimes], names: dict[int, str]) -> list[Usage]:
    """Each thread's (or pool's) use between two snapshots, the most CPU first; a thread that
    started meanwhile counts from zero."""
    out: dict[str, Usage] = {}
    for tid, now in after.items():
        was = before.get(tid, ThreadTimes(now.name, 0.0, 0.0, 0, 0))
        key = pool_name(names.get(tid, now.name))
        entry = out.setdefault(key, Usage(key))
        entry.threads += 1
        entry.user_s += now.user_s - was.user_s
        entry.system_s += now.system_s - was.system_s
        entry.voluntary += now.voluntary - was.voluntary
        entry.involuntary += now.involuntary - was.involuntary
    return sorted(out.values(), key=lambda u: -u.cpu_s)


def report(process: str, rows: list[Usage], jobs: int) -> list[str]:
    """The lines for one process: its total, then each thread with any CPU or switches."""
    total = sum(u.cpu_s for u in rows)
    lines = [f"{process}: {total / jobs * 1000:.3f} ms CPU per job"]
    for u in rows:
        if u.cpu_s or u.voluntary or u.involuntary:
            lines.append(
                f"  {u.name:<24} {u.cpu_s / jobs * 1000:7.3f} ms (user {u.user_s / jobs * 1000:.3f}, system "
                f"{u.system_s / jobs * 1000:.3f}), switches per job {u.voluntary / jobs:6.2f} waited "
                f"{u.involuntary / jobs:5.2f} preempted" + (f", {u.threads} threads" if u.threads > 1 else "")
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.threads", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds measured, after a warm-up")
    parser.add_argument("--clients", type=int, default=16)
    servers.add_system_arguments(parser)
    args = parser.parse_args(argv)
    python, env = servers.system_settings(args, MODEL)
    images = load_gallery(args.gallery_dir, None)
    spy = py_spy()
    if spy is None:
        print("note: py-spy not found: threads are named as the kernel knows them")
    with (
        tempfile.TemporaryDirectory() as tmp,
        servers.system(Path(tmp) / "system", workers=args.workers, env=env, worker_python=python) as stack,
    ):
        gateway = f"http://127.0.0.1:{stack.gateway_port}"
        results = f"http://127.0.0.1:{stack.results_port}"
        pids = servers.stack_pids(stack)

        def job(tag: str):  # noqa: ANN202 - bench.load's job type
            return system_job(
                gateway, results, MODEL, images, f"threads-{tag}-{uuid.uuid4().hex}".encode(), cached=False
            )

        closed_loop(job("warm-up"), args.clients, 0.0, WARMUP_S)
        before = {name: thread_times(pid) for name, pid in pids.items()}
        began = time.monotonic()
        result = closed_loop(job("measured"), args.clients, 0.0, args.duration)
        after = {name: thread_times(pid) for name, pid in pids.items()}
        elapsed = time.monotonic() - began
        # Named after the load: a pool's threads start as it needs them, and stay.
        names = {name: python_names(pid, spy) for name, pid in pids.items()}
    jobs = max(1, result.total_completed)
    print(
        f"{jobs} jobs in {elapsed:.1f} s at {args.clients} clients: {jobs / elapsed:.1f} images/s, "
        f"p50 {result.percentile(50) * 1000:.1f} ms"
    )
    for name in pids:
        print("\n".join(report(name, usage(before[name], after[name], names[name]), jobs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
