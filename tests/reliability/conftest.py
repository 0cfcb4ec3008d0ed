"""Fixtures for the reliability suite: isolated multi-process stacks on the real RabbitMQ (each
with its own queue and SQLite file), and the summary of every figure at the end of the run."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devstack.stack import Stack
from tests.reliability.accounting import FIGURES, MODEL
from tests.utils.rabbitmq_node import RabbitNode, rabbit_node
from tests.utils.stack import running_stack


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.section("reliability figures")
        for line in FIGURES:
            terminalreporter.write_line(line)


def _reliability_stack(
    tmp_path: Path, seeded: tuple[Path, Path], workers: int = 2, **env: str
) -> contextlib.AbstractContextManager[Stack]:
    settings = {
        "CLASSIFIER_MODELS": MODEL,
        "CLASSIFIER_RESULT_CACHE": "false",  # every job really runs, so a fault lands mid-job
        "CLASSIFIER_TORCH_THREADS": "1",  # two workers on two cores
        **env,
    }
    return running_stack(tmp_path, seeded, workers, **settings)


@pytest.fixture
def stack_factory(tmp_path: Path, seeded: tuple[Path, Path]) -> Iterator[Callable[..., Stack]]:
    with contextlib.ExitStack() as stacks:

        def make(workers: int = 2, **env: str) -> Stack:
            return stacks.enter_context(_reliability_stack(tmp_path, seeded, workers, **env))

        yield make


@pytest.fixture(scope="session")
def shared_stack(tmp_path_factory: pytest.TempPathFactory, seeded: tuple[Path, Path]) -> Iterator[Stack]:
    """One stack (one worker, result cache on) for the tests that only read what it does: the
    fuzzer, poison messages, request ids. The fault and load tests start their own."""
    with _reliability_stack(
        tmp_path_factory.mktemp("shared-stack"), seeded, workers=1, CLASSIFIER_RESULT_CACHE="true"
    ) as stack:
        yield stack


@pytest.fixture
def private_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitNode]:
    """A RabbitMQ node of the test's own, for the faults that stop, kill or alarm the broker: the
    machine's shared broker is never touched."""
    with rabbit_node(tmp_path_factory.mktemp("rabbitmq-node")) as node:
        yield node


@pytest.fixture
def gallery_images(gallery_labels: dict[str, int]) -> list[str]:
    return sorted(gallery_labels)
