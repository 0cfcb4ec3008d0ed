"""A pool of local worker processes that an (emulated) autoscaler resizes, as a ReplicaSet would.

Workers are ``python -m classifier_worker`` processes started through devstack/stack.py's
:class:`Stack`, with the pool's own settings (``CLASSIFIER_POOL`` and whatever else differs
between pools, as each pool's Deployment sets them). Several pools share one stack and one
Prometheus targets file (:class:`WorkerTargets`): worker indexes, hence ports, are unique across
the pools. Scaling up starts new ones; scaling down sends SIGTERM to the newest, which stop
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
from collections.abc import Callable, Mapping
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


class WorkerTargets:
    """The Prometheus targets file of every pool's workers, and the worker indexes in use (a
    worker's index gives its port and its process name, so no two pools may share one)."""

    def __init__(self, path: Path, port_of: Callable[[int], int]) -> None:
        self.path = path
        self.port_of = port_of  # a worker index's port
        self._lock = threading.Lock()
        self._by_pool: dict[str, set[int]] = {}

    def claim(self, pool: str) -> int:
        """The lowest index no pool holds, now held by ``pool``."""
        with self._lock:
            taken = set().union(*self._by_pool.values())
            index = next(i for i in range(10_000) if i not in taken)
            self._by_pool.setdefault(pool, set()).add(index)
            return index

    def set_pool(self, pool: str, indexes: set[int]) -> None:
        """``pool``'s workers are now ``indexes`` (running or draining): rewrite the file."""
        with self._lock:
            self._by_pool[pool] = set(indexes)
            every = sorted(set().union(*self._by_pool.values()))
            write_worker_targets(self.path, [self.port_of(i) for i in every], worker_ids=every)


class WorkerPool:
    def __init__(
        self,
        stack: Stack,
        targets: WorkerTargets | Path,
        *,
        pool: str = "default",
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.stack = stack
        self.pool = pool
        self.env = dict(env or {})
        self.targets = targets if isinstance(targets, WorkerTargets) else WorkerTargets(targets, stack.worker_port_of)
        self._lock = threading.Lock()
        self._active: dict[int, subprocess.Popen[bytes]] = {}
        self._started_at: dict[int, float] = {}
        self._terminating: dict[int, tuple[subprocess.Popen[bytes], float]] = {}
        self.stopped: list[StoppedWorker] = []
        self._http = httpx.Client(timeout=1.0)

    @property
    def replicas(self) -> int:
        """Workers started and not told to stop (ready or still starting)."""
        with self._lock:
            return len(self._active)

    def scale_to(self, replicas: int) -> None:
        with self._lock:
            self._reap()
            while len(self._active) < replicas:
                index = self.targets.claim(self.pool)
                self.stack.start_worker(index, pool=self.pool, env=self.env)
                self._active[index] = self.stack.procs[self.stack.worker_name(index)]
                self._started_at[index] = time.monotonic()
                logger.info("pool %s: started worker %d", self.pool, index)
            while len(self._active) > replicas:
                newest = max(self._active, key=lambda i: self._started_at[i])
                proc = self._active.pop(newest)
                proc.send_signal(signal.SIGTERM)
                self._terminating[newest] = (proc, time.monotonic())
                logger.info("pool %s: SIGTERM to worker %d (drains, then exits)", self.pool, newest)
            self._write_targets()

    @property
    def worker_names(self) -> list[str]:
        with self._lock:
            return [self.stack.worker_name(i) for i in self._active]

    def ready_count(self) -> int:
        """Active workers whose /readyz answers 200 (models loaded, consuming)."""
        with self._lock:
            self._reap()
            indexes = list(self._active)
        return sum(self._ready(i) for i in indexes)

    def _ready(self, index: int) -> bool:
        try:
            url = f"http://127.0.0.1:{self.stack.worker_port_of(index)}/readyz"
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
                logger.info("pool %s: worker %d exited with %d", self.pool, index, code)
                changed = True
        if changed:
            self._write_targets()

    def _write_targets(self) -> None:
        self.targets.set_pool(self.pool, set(self._active) | set(self._terminating))
