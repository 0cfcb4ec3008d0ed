"""A worker of the local stack started again after it exited: the fault tests and the scaling
experiments restart workers on a busy machine, where another process may take the port the
worker listened on in the meantime."""

from __future__ import annotations

import json
import signal
import socket
from pathlib import Path

import pytest

from tests.utils.stack import running_stack

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]


def test_a_restarted_worker_whose_port_was_taken_listens_on_another(tmp_path: Path, seeded: tuple[Path, Path]) -> None:
    with running_stack(tmp_path, seeded, workers=1, CLASSIFIER_MODELS="efficientnet_lite0") as stack:
        old_port = stack.worker_port_of(0)
        assert stack.kill("worker-0", signal.SIGKILL) == -signal.SIGKILL
        with socket.create_server(("127.0.0.1", old_port)):  # another process takes the port
            stack.start_worker(0)
            stack.wait_ready(timeout=120, names=["worker-0"])
        new_port = stack.worker_port_of(0)
        assert new_port != old_port
        targets = json.loads(stack.targets_file.read_text())
        assert [group["targets"] for group in targets] == [[f"127.0.0.1:{new_port}"]]
