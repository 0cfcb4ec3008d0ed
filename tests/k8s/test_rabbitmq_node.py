"""The chart's RabbitMQ configuration on a real RabbitMQ node of this machine's version (3.10).

A node of our own (own name, ports, data and log directories; the shared broker is not touched)
starts with the rendered enabled_plugins and 90-classifier.conf (another with the RabbitmqCluster's
additionalConfig and advancedConfig): the settings must parse and be in force, and
rabbitmq_prometheus's per-queue endpoint, scraped with the PodMonitor's own path and parameters,
must carry the two series the autoscaling's backlog query adds up. The chart pins a 4.x image;
docs/kubernetes.md ("RabbitMQ 4") lists what differs between the two.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pika
import pytest
from prometheus_client.parser import text_string_to_metric_families

from classifier_common.broker.rabbitmq import RabbitPublisher
from classifier_common.config import Settings
from devstack.ports import free_port
from tests.k8s.chart import CHART, chart_values, one, render

OPERATORS = ("--values", str(CHART / "ci" / "operators-values.yaml"))

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
MONITORING = ("--values", str(CHART / "ci" / "monitoring-values.yaml"))
KEDA = ("--values", str(CHART / "ci" / "keda-values.yaml"))

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (RABBITMQ_BIN / "rabbitmq-server").exists(), reason="RabbitMQ is not installed"),
]


@dataclass
class Node:
    name: str
    env: dict[str, str]
    amqp_port: int
    prometheus_port: int

    def eval(self, expression: str) -> str:
        result = subprocess.run(
            [str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.name, "eval", expression],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()


@contextmanager
def started_node(base: Path, plugins: str, conf: str, advanced: str = "[].\n") -> Iterator[Node]:
    """A RabbitMQ node of its own with these files, on free local ports; stopped on exit."""
    amqp, dist, management, prometheus = (free_port() for _ in range(4))
    (base / "enabled_plugins").write_text(plugins)
    # The rendered settings, then this machine's listeners (the pod's are the defaults).
    (base / "rabbitmq.conf").write_text(
        conf
        + f"listeners.tcp.default = 127.0.0.1:{amqp}\n"
        + f"management.tcp.ip = 127.0.0.1\nmanagement.tcp.port = {management}\n"
        + f"prometheus.tcp.ip = 127.0.0.1\nprometheus.tcp.port = {prometheus}\n"
        + "collect_statistics_interval = 1000\n"  # fresher queue metrics than the default 5 s
    )
    (base / "advanced.config").write_text(advanced)
    name = f"chart-{uuid.uuid4().hex[:8]}@localhost"
    env = {
        **os.environ,
        "HOME": str(base),  # its own Erlang cookie
        "RABBITMQ_NODENAME": name,
        "RABBITMQ_DIST_PORT": str(dist),
        "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
        "RABBITMQ_ADVANCED_CONFIG_FILE": str(base / "advanced.config"),
        "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
        "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
        "RABBITMQ_LOG_BASE": str(base / "log"),
    }
    log = (base / "server.log").open("w")
    process = subprocess.Popen(
        [str(RABBITMQ_BIN / "rabbitmq-server")], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, (base / "server.log").read_text()[-3000:]
            try:
                pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", amqp)).close()
                break
            except pika.exceptions.AMQPError:
                assert time.monotonic() < deadline, (base / "server.log").read_text()[-3000:]
                time.sleep(0.5)
        yield Node(name, env, amqp, prometheus)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """The StatefulSet's node: the rendered enabled_plugins and 90-classifier.conf."""
    data = one(render(), "ConfigMap", "classifier-rabbitmq")["data"]
    with started_node(tmp_path_factory.mktemp("rabbitmq"), data["enabled_plugins"], data["90-classifier.conf"]) as n:
        yield n


def test_the_rendered_settings_parse_and_are_in_force(node: Node) -> None:
    rabbitmq = chart_values()["rabbitmq"]
    assert node.eval("application:get_env(ra, wal_max_size_bytes).") == f"{{ok,{rabbitmq['walMaxSizeBytes']}}}"
    assert node.eval("application:get_env(rabbit, consumer_timeout).") == "{ok,1800000}"
    limit = node.eval("application:get_env(rabbit, vm_memory_high_watermark).")
    assert limit == '{ok,{absolute,"400MB"}}'


def test_the_rabbitmq_cluster_settings_parse_and_are_in_force(tmp_path: Path) -> None:
    """The RabbitmqCluster's additionalConfig and advancedConfig on a node of this machine's
    version, with the two plugins the operator enables by default: every setting parses and holds."""
    rabbitmq = one(render(*OPERATORS), "RabbitmqCluster", "classifier-rabbitmq")["spec"]["rabbitmq"]
    plugins = "[rabbitmq_management,rabbitmq_prometheus].\n"
    with started_node(tmp_path, plugins, rabbitmq["additionalConfig"], rabbitmq["advancedConfig"]) as cluster_node:
        wal = chart_values()["rabbitmqCluster"]["walMaxSizeBytes"]
        assert cluster_node.eval("application:get_env(ra, wal_max_size_bytes).") == f"{{ok,{wal}}}"
        assert cluster_node.eval("application:get_env(rabbit, consumer_timeout).") == "{ok,1800000}"
        assert cluster_node.eval("application:get_env(rabbit, quorum_cluster_size).") == "{ok,3}"
        assert cluster_node.eval("application:get_env(rabbit, queue_leader_locator).") == '{ok,<<"balanced">>}'


def test_the_per_queue_endpoint_carries_the_backlog_the_autoscaling_reads(node: Node) -> None:
    (endpoint,) = one(render(*MONITORING), "PodMonitor", "classifier-rabbitmq")["spec"]["podMetricsEndpoints"]
    query = one(render(*KEDA), "ScaledObject", "classifier-worker-default")["spec"]["triggers"][0]["metadata"]["query"]
    series = set(re.findall(r"rabbitmq_\w+", query))
    assert series == {"rabbitmq_detailed_queue_messages_ready", "rabbitmq_detailed_queue_messages_unacked"}

    settings = Settings(broker_url=f"amqp://guest:guest@127.0.0.1:{node.amqp_port}/", queue_name="classifier.jobs")
    publisher = RabbitPublisher(settings)
    try:
        for n in range(3):
            publisher.publish(b"{}", message_id=f"job-{n}")
    finally:
        publisher.close()

    # Queue metrics are refreshed every collect_statistics_interval.
    ready = ("rabbitmq_detailed_queue_messages_ready", "classifier.jobs.default")  # the one pool's queue
    deadline = time.monotonic() + 30
    while True:
        response = httpx.get(
            f"http://127.0.0.1:{node.prometheus_port}{endpoint['path']}", params=endpoint["params"], timeout=10
        )
        assert response.status_code == 200
        samples = {
            (sample.name, sample.labels.get("queue")): sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples
        }
        if samples.get(ready) == 3 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert samples.get(ready) == 3, response.text[-2000:]
    assert samples[("rabbitmq_detailed_queue_messages_unacked", "classifier.jobs.default")] == 0
