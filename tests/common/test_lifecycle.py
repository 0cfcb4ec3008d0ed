"""The composer every process uses: parts start in order, stop in reverse (also when a start
fails half way), and the process is ready only when every part is."""

from __future__ import annotations

import pytest

from classifier_common.lifecycle import Checks, Component, Composer


class Part(Component):
    def __init__(self, name: str, log: list[str], checks: Checks | None = None, fail_start: bool = False):
        self.name = name
        self.log = log
        self.checks = checks or {}
        self.fail_start = fail_start

    def start(self) -> None:
        if self.fail_start:
            raise RuntimeError(f"{self.name} cannot start")
        self.log.append(f"start {self.name}")

    def stop(self) -> None:
        self.log.append(f"stop {self.name}")

    def readiness(self) -> Checks:
        return self.checks


def test_parts_start_in_order_and_stop_in_reverse() -> None:
    log: list[str] = []
    composer = Composer([Part("store", log), Part("gateway", log), Part("worker", log)])
    composer.start()
    composer.stop()
    assert log == ["start store", "start gateway", "start worker", "stop worker", "stop gateway", "stop store"]


def test_a_failed_start_stops_what_had_started() -> None:
    log: list[str] = []
    composer = Composer([Part("store", log), Part("results", log), Part("worker", log, fail_start=True)])
    with pytest.raises(RuntimeError, match="worker cannot start"):
        composer.start()
    assert log == ["start store", "start results", "stop results", "stop store"]


def test_readiness_is_the_conjunction_of_the_parts() -> None:
    log: list[str] = []
    composer = Composer(
        [
            Part("store", log, {"store": None}),
            Part("gateway", log, {"broker": None, "store": None}),
            Part("results", log, {"store": "database is locked"}),  # one part sees the store down
            Part("worker", log, {"worker": "loading models"}),
        ]
    )
    assert composer.readiness() == {"store": "database is locked", "broker": None, "worker": "loading models"}
