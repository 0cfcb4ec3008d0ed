"""A pool of local worker processes that an (emulated) autoscaler resizes, as a ReplicaSet would.

Workers are ``python -m classifier_worker`` processes started through devstack/stack.py's
:class:`Stack`. Scaling up starts new ones; scaling down sends SIGTERM to the newest, which stop
consuming, finish the job in hand, ack it and exit 0 -- Kubernetes sends the same signal to a
pod the HPA removes. A terminating worker no longer counts as a replica (as a terminating pod
does not count in the Deployment's replicas) but stays a Prometheus target until it has exited,
so the jobs it finishes while draining are counted.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from devstack.stack import Stack
from devstack.targets import write_worker_targets

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoppedWorker:
    index: int
    exit_code: int | None  # None: still running when the pool gave up waiting
    drain_s: float  # SIGTERM to exit


class WorkerPool:
    def __init__(self, stack: Stack, targets_file: Path) -> None:
        self.stack = stack
        self.targets_file = targets_file
        self._lock = threading.Lock()
        self._active: dict[int, subprocess.Popen[bytes]] = {}
        self._started_at: dict[int, float] = {}
        self._terminating: dict[int, tuple[subprocess.Popen[bytes], float]] = {}
        self.stopped: list[StoppedWorker] = []
        self._http = httpx.Client(timeout=1.0)
        # Adopt the workers the stack already started.
        for name, proc in stack.procs.items():
            if name.startswith("worker-") and proc.poll() is None:
                index = int(name.split("-", 1)[1])
                self._active[index] = proc
                self._started_at[index] = time.monotonic()
        self._write_targets()

    @property
    def replicas(self) -> int:
        """Workers started and not told to stop (ready or still starting)."""
        with self._lock:
            return len(self._active)

    def scale_to(self, replicas: int) -> None:
        with self._lock:
            self._reap()
            while len(self._active) < replicas:
                index = next(i for i in range(10_000) if i not in self._active and i not in self._terminating)
                self.stack.start_worker(index)
                self._active[index] = self.stack.procs[self.stack.worker_name(index)]
                self._started_at[index] = time.monotonic()
                logger.info("started worker %d", index)
            while len(self._active) > replicas:
                newest = max(self._active, key=lambda i: self._started_at[i])
                proc = self._active.pop(newest)
                proc.send_signal(signal.SIGTERM)
                self._terminating[newest] = (proc, time.monotonic())
                logger.info("SIGTERM to worker %d (drains, then exits)", newest)
            self._write_targets()

    def ready_count(self) -> int:
        """Active workers whose /readyz answers 200 (models loaded, consuming)."""
        with self._lock:
            self._reap()
            indexes = list(self._active)
        return sum(self._ready(i) for i in indexes)

    def _ready(self, index: int) -> bool:
        try:
            url = f"http://127.0.0.1:{self.stack.worker_port + index}/readyz"
            return self._http.get(url).status_code == 200
        except httpx.TransportError:
            return False

    def crashed(self) -> list[int]:
        """Active workers that exited without being told to stop."""
        with self._lock:
            return [i for i, proc in self._active.items() if proc.poll() is not None]

    def wait_terminated(self, timeout_s: float = 60.0) -> None:
        """Wait until the workers told to stop have exited (drained)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                self._reap()
                if not self._terminating:
                    return
            time.sleep(0.1)

    def stop_all(self, timeout_s: float = 60.0) -> None:
        self.scale_to(0)
        deadline = time.monotonic() + timeout_s
        while self._terminating and time.monotonic() < deadline:
            with self._lock:
                self._reap()
            time.sleep(0.1)
        with self._lock:
            for index, (proc, since) in list(self._terminating.items()):
                proc.kill()
                proc.wait()
                self.stopped.append(StoppedWorker(index, None, time.monotonic() - since))
            self._terminating.clear()
        self._http.close()

    def _reap(self) -> None:
        changed = False
        for index, (proc, since) in list(self._terminating.items()):
            code = proc.poll()
            if code is not None:
                del self._terminating[index]
                self.stopped.append(StoppedWorker(index, code, time.monotonic() - since))
                logger.info("worker %d exited with %d", index, code)
                changed = True
        if changed:
            self._write_targets()

    def _write_targets(self) -> None:
        indexes = sorted(set(self._active) | set(self._terminating))
        write_worker_targets(self.targets_file, [self.stack.worker_port + i for i in indexes], worker_ids=indexes)
