"""Free TCP ports on the loopback for the servers a test, a benchmark or an experiment starts."""

from __future__ import annotations

import os
import random
import socket


def free_port() -> int:
    """A port nothing listens on: any the system gives, or one of ``CLASSIFIER_TEST_PORTS``
    ("23000-23999") on a machine where each user keeps to a range."""
    wanted = os.environ.get("CLASSIFIER_TEST_PORTS")
    candidates = [0]
    if wanted:
        low, high = (int(part) for part in wanted.split("-"))
        candidates = random.sample(range(low, high + 1), high - low + 1)
    for port in candidates:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise RuntimeError(f"no free port in {wanted}")


def port_is_free(port: int) -> bool:
    """Whether nothing holds ``port`` on the loopback now."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True
