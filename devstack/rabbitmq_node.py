"""A RabbitMQ node of its own, for what must never touch the machine's shared broker: the tests'
faults (stopping it, killing it with SIGKILL, raising a memory alarm on it) and the benchmark's
readings of the node's memory.

The node runs the installed RabbitMQ as the current user, with its own name, ports, cookie
(``HOME`` is its directory), mnesia and log directories and no plugins, listening on 127.0.0.1
only. It keeps its data across :meth:`RabbitNode.stop` / :meth:`kill` and :meth:`start`, as a
broker restarted on the same disk does. With ``prometheus=True`` it also serves its metrics
(rabbitmq_prometheus, the per-queue numbers the autoscaling reads) on :attr:`metrics_address`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from devstack.ports import free_port

RABBITMQ_BIN = Path(os.environ.get("RABBITMQ_BIN", "/usr/lib/rabbitmq/bin"))


class RabbitNode:
    def __init__(self, directory: Path, *, prometheus: bool = False):
        self.dir = directory
        self.name = f"test-{uuid.uuid4().hex[:8]}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        ctl_port = free_port()
        self._env = {
            **os.environ,
            "HOME": str(directory),  # the Erlang cookie: the node's and its CLI's own
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CTL_DIST_PORT_MIN": str(ctl_port),
            "RABBITMQ_CTL_DIST_PORT_MAX": str(ctl_port),
            "RABBITMQ_MNESIA_BASE": str(directory / "mnesia"),
            "RABBITMQ_LOG_BASE": str(directory / "log"),
            "RABBITMQ_CONFIG_FILE": str(directory / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(directory / "enabled_plugins"),
            "RABBITMQ_CONF_ENV_FILE": str(directory / "rabbitmq-env.conf"),
            "RABBITMQ_PID_FILE": str(directory / "beam.pid"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }
        for sub in ("mnesia", "log"):
            (directory / sub).mkdir(parents=True, exist_ok=True)
        self.prometheus_port = free_port() if prometheus else None
        config = f"listeners.tcp.local = 127.0.0.1:{self.port}\n"
        if prometheus:
            config += f"prometheus.tcp.ip = 127.0.0.1\nprometheus.tcp.port = {self.prometheus_port}\n"
        (directory / "rabbitmq.conf").write_text(config)
        (directory / "enabled_plugins").write_text("[rabbitmq_prometheus].\n" if prometheus else "[].\n")
        (directory / "rabbitmq-env.conf").write_text("")
        self._server: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    @property
    def metrics_address(self) -> str:
        """host:port of its rabbitmq_prometheus endpoint (a node started with prometheus=True)."""
        if self.prometheus_port is None:
            raise RuntimeError("this node serves no metrics: start it with prometheus=True")
        return f"127.0.0.1:{self.prometheus_port}"

    def ctl(self, *args: str, timeout: float = 60) -> str:
        run = subprocess.run(
            [str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.name, *args],
            env=self._env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if run.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {run.stdout}{run.stderr}")
        return run.stdout

    def start(self, timeout: float = 90) -> None:
        log = (self.dir / "server.log").open("ab")
        self._server = subprocess.Popen(
            [str(RABBITMQ_BIN / "rabbitmq-server")],
            env=self._env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while True:  # await_startup fails at once until the node has registered with epmd
            try:
                self.ctl("await_startup", "--timeout", "30", timeout=40)
                return
            except RuntimeError:
                if self._server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"RabbitMQ node {self.name} did not start; see {self.dir}") from None
                time.sleep(0.5)

    def beam_pid(self) -> int:
        return int((self.dir / "beam.pid").read_text().strip())

    def kill(self) -> None:
        """SIGKILL the Erlang VM: no goodbye to clients, nothing flushed that was not on disk."""
        os.kill(self.beam_pid(), signal.SIGKILL)
        self._reap()

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self.ctl("stop")
        self._reap()

    def _reap(self) -> None:
        if self._server is not None:
            try:
                self._server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self._server.pid, signal.SIGKILL)
                self._server.wait(timeout=10)
            self._server = None

    def set_memory_alarm(self, on: bool) -> None:
        """A memory watermark of 0 raises the memory alarm at once; 0.4 is RabbitMQ's default."""
        self.ctl("set_vm_memory_high_watermark", "0" if on else "0.4")

    @contextlib.contextmanager
    def memory_alarm(self) -> Iterator[None]:
        self.set_memory_alarm(True)
        try:
            yield
        finally:
            self.set_memory_alarm(False)

    def queue_counts(self, queue: str) -> tuple[int, int]:
        """(ready, unacknowledged) of a queue, as the node reports them."""
        for line in self.ctl(
            "list_queues", "-q", "--no-table-headers", "name", "messages_ready", "messages_unacknowledged"
        ).splitlines():
            name, ready, unacked = line.split("\t")
            if name == queue:
                return int(ready), int(unacked)
        raise KeyError(queue)


@contextlib.contextmanager
def rabbit_node(directory: Path, *, prometheus: bool = False) -> Iterator[RabbitNode]:
    """A started node, stopped (or killed) afterwards whatever happened."""
    node = RabbitNode(directory, prometheus=prometheus)
    node.start()
    try:
        yield node
    finally:
        node.stop()
