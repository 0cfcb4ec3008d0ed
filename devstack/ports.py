"""Free TCP ports on the loopback for the servers a test, a benchmark or an experiment starts."""

from __future__ import annotations

import collections
import os
import random
import socket

# Below Linux's ephemeral range (32768-60999), from which the system gives a port for bind(0) and
# outgoing connections take their local ports: one of those could take a port picked there
# between this check and the server's own bind (a results service once failed to start so).
DEFAULT_PORTS = "20000-29999"


# The last ports this process handed out: a stack picks several before its servers bind any.
_given: collections.deque[int] = collections.deque(maxlen=1000)


def free_port() -> int:
    """A port nothing listens on now and that this process has not handed out lately, at random
    in ``CLASSIFIER_TEST_PORTS`` ("23000-23999", on a machine where each user keeps to a range;
    default DEFAULT_PORTS)."""
    wanted = os.environ.get("CLASSIFIER_TEST_PORTS") or DEFAULT_PORTS
    low, high = (int(part) for part in wanted.split("-"))
    for port in random.sample(range(low, high + 1), high - low + 1):
        if port in _given or not port_is_free(port):
            continue
        _given.append(port)
        return port
    raise RuntimeError(f"no free port in {wanted} that this process has not handed out lately")


def port_is_free(port: int) -> bool:
    """Whether nothing holds ``port`` on the loopback now."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True
