"""The lock that keeps a model's rewrite away from every forward pass (torch-free, so a worker
without torch imports it too).

Tracing (:mod:`classifier_worker.optimize`) and the ONNX export patch ``torch.nn.Module.__call__``
for the whole process while they run, so a model running in another thread meanwhile fails
("module is not installed as a submodule"). They hold :data:`RUNNING` exclusively; everything
that runs a model holds it shared (``with RUNNING.shared(): ...``), as ``LoadedModel.predict`` does.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class SharedExclusive:
    """A lock that many holders may share, or one may hold alone. A holder waiting to hold it
    alone goes first: new shared holders wait behind it, so a steady stream of them (a busy
    worker) cannot keep it out."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._shared = 0
        self._exclusive = False
        self._waiting = 0  # would-be exclusive holders

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._exclusive and not self._waiting)
            self._shared += 1
        try:
            yield
        finally:
            with self._cond:
                self._shared -= 1
                self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._waiting += 1
            self._cond.wait_for(lambda: not self._exclusive and not self._shared)
            self._waiting -= 1
            self._exclusive = True
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()


RUNNING = SharedExclusive()


__all__ = ["RUNNING", "SharedExclusive"]
