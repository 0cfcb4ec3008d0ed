"""The dashboards, rules and adapter query against a real Prometheus scraping a real stack.

A Prometheus server (Debian's binary; monitoring/prometheus/local.yml with this test's ports,
1 s scrape and evaluation interval, the rule file loaded) scrapes an isolated multi-process
stack on the machine's RabbitMQ. The stack gets its own RabbitMQ vhost, created and deleted
through the management API, so that the jobs queue of the one worker pool has its real name,
classifier.jobs.default, which the rules and dashboards select, and Prometheus scrapes only that
vhost's queues (rabbitmq_prometheus' `vhost` parameter): the machine's `/` vhost has other
classifier.jobs.* queues from other runs. The worker's scrape target is labelled with its pool,
as on Kubernetes.

The scenario (module fixture), then the tests read what it left:
1. no worker runs; 30 jobs are submitted to a queue bounded at 25: N (25 or 26) accepted, the
   rest refused with 429;
2. (b) the adapter's backlog query must then equal the true backlog, N (ready, counted by
   RabbitMQ; nothing is unacked without a consumer);
3. a worker starts and works the backlog off; a job whose image the worker cannot decode fails;
   repeated images hit the result cache; results are looked up, unknown ids too;
4. (a) every expression of the dashboards, recording rules and adapter config returns data,
   and every series selector of every alert matches series -- except the ones listed in
   EXCLUDED with their reason.
"""

from __future__ import annotations

import re
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pika
import pytest
import yaml

from devstack.ports import free_port
from devstack.stack import Stack
from devstack.targets import write_worker_targets
from experiments.local_prometheus import LocalPrometheus, ScrapeTargets, derive_config
from experiments.prom import PrometheusClient, backlog_query
from tests.monitoring.conftest import RULES
from tests.monitoring.test_promql import adapter_expressions, dashboard_expressions, rule_expressions
from tests.utils.corrupt_images import bad_exif_images

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]

MANAGEMENT = "http://127.0.0.1:15672/api"
QUEUE = "classifier.jobs.default"
# The queue's bound (CLASSIFIER_QUEUE_MAX_LENGTH). A quorum queue checks it before it appends,
# so it may take one message more than the bound: the tests count the 202s rather than assume 25.
MAX_LENGTH = 25
SUBMITTED = MAX_LENGTH + 5
IMAGES = ("n01440764_tench.JPEG", "n01531178_goldfinch.JPEG", "n01629819_European_fire_salamander.JPEG")

# Expressions that cannot return data against a local stack, and why.
KUBERNETES_ONLY = "kube_horizontalpodautoscaler_"
EXCLUDED = {
    KUBERNETES_ONLY: "kube-state-metrics series of the worker HPA: they exist only on Kubernetes "
    "(kube-prometheus-stack); the local stack has no HPA",
    "kube_deployment_": "kube-state-metrics series of the worker pools' Deployments: Kubernetes only",
    'pool=""': "workers scraped without a pool label: none here, the targets file labels each worker",
    'namespace="classifier"': "the adapter query as rendered for an HPA in namespace classifier: local "
    "series have no namespace label (promtool evaluates that form in test_adapter_and_stack_values)",
}
# What EXCLUDED leaves out: the overview's HPA target line and replica panels, and the adapter
# query in its namespaced form. Listed so that a new exclusion is a conscious change.
EXPECTED_EXCLUSIONS = [
    "classifier-overview.json: Backlog per worker B",
    "classifier-overview.json: Workers: desired vs current A",
    "classifier-overview.json: Workers: desired vs current B",
    "classifier-overview.json: Workers: desired vs current C",
    "classifier-overview.json: Replicas per pool B",
    "adapter (namespace classifier)",
]
# Expressions whose numerator counts 5xx answers: a healthy stack gives none, so they are
# evaluated with 4xx in place of 5xx (the scenario's 429s and 404s) to show that they return
# data as soon as the numerator has series.
SERVER_ERRORS = '"5.."'
CLIENT_ERRORS = '"4.."'


@dataclass
class Scenario:
    prometheus: PrometheusClient
    accepted: int = 0
    refused: list[int] = field(default_factory=list)
    true_backlog: int | None = None
    adapter_backlog: float | None = None
    alert_without_consumers: list[tuple[dict[str, str], float]] = field(default_factory=list)
    evaluated_at: float = 0.0


def management(method: str, path: str, **kwargs: object) -> httpx.Response:
    return httpx.request(method, f"{MANAGEMENT}{path}", auth=("guest", "guest"), timeout=10, **kwargs)


def true_backlog(amqp_url: str) -> tuple[int, int]:
    """(ready messages, consumers) of the jobs queue, as RabbitMQ reports them right now."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        method = connection.channel().queue_declare(QUEUE, passive=True).method
        return method.message_count, method.consumer_count
    finally:
        connection.close()


def wait_until(condition, timeout_s: float, what: str, interval_s: float = 0.5):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(interval_s)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory, seeded: tuple[Path, Path]) -> Iterator[Scenario]:
    started = time.monotonic()
    tmp = tmp_path_factory.mktemp("live-prometheus")
    models_dir, gallery_dir = seeded
    vhost = f"classifier-test-{uuid.uuid4().hex[:8]}"
    try:
        created = management("PUT", f"/vhosts/{urllib.parse.quote(vhost, safe='')}")
    except httpx.TransportError as exc:
        pytest.fail(f"RabbitMQ management API unreachable ({exc}): rabbitmq-plugins enable rabbitmq_management")
    assert created.status_code in (201, 204), created.text
    permissions = {"configure": ".*", "write": ".*", "read": ".*"}
    assert management("PUT", f"/permissions/{vhost}/guest", json=permissions).status_code in (201, 204)
    amqp_url = f"amqp://guest:guest@127.0.0.1:5672/{urllib.parse.quote(vhost, safe='')}"

    stack = Stack(
        workers=0,
        port=free_port(),
        gateway_port=free_port(),
        results_port=free_port(),
        worker_port=free_port(),
        state_dir=tmp / "stack",
        nginx=False,
        env={
            "CLASSIFIER_BROKER_URL": amqp_url,
            "CLASSIFIER_STORE_URL": f"sqlite:///{tmp}/jobs.db",
            "CLASSIFIER_MODELS_DIR": str(models_dir),
            "CLASSIFIER_GALLERY_DIR": str(gallery_dir),
            "CLASSIFIER_MODELS": "efficientnet_lite0",
            "CLASSIFIER_QUEUE_MAX_LENGTH": str(MAX_LENGTH),
            "CLASSIFIER_HEARTBEAT_S": "1",
            "CLASSIFIER_LOG_FORMAT": "json",
        },
    )
    workers_file = tmp / "worker-targets.json"
    write_worker_targets(workers_file, [])
    config = derive_config(
        ScrapeTargets(
            gateway=f"127.0.0.1:{stack.gateway_port}",
            results=f"127.0.0.1:{stack.results_port}",
            workers_file=workers_file,
            vhost=vhost,
        ),
        interval_s=1.0,
    )
    server = LocalPrometheus(config, tmp / "prometheus", free_port())
    prometheus = PrometheusClient(server.url)
    try:
        server.start()
        stack.up(timeout=120)
        gateway = httpx.Client(base_url=f"http://127.0.0.1:{stack.gateway_port}", timeout=30)
        results = httpx.Client(base_url=f"http://127.0.0.1:{stack.results_port}", timeout=40)
        result = Scenario(prometheus)

        # 1. No worker: the queue fills to its bound, the rest is refused.
        ids = []
        for i in range(SUBMITTED):
            response = gateway.post("/v1/jobs", json={"model": "efficientnet_lite0", "image": IMAGES[i % len(IMAGES)]})
            if response.status_code == 202:
                ids.append(response.json()["id"])
            else:
                result.refused.append(response.status_code)
        result.accepted = len(ids)

        # 2. The adapter's query once RabbitMQ's metrics (refreshed every 5 s) show the backlog.
        ready, consumers = true_backlog(amqp_url)
        assert consumers == 0
        result.true_backlog = ready  # nothing is unacked without a consumer
        query = backlog_query(QUEUE, namespace=None)
        result.adapter_backlog = wait_until(
            lambda: (v := prometheus.value(query)) == ready and v, 30, f"the adapter query to reach {ready}"
        )
        alert = next(r for r in yaml.safe_load(RULES.read_text())["groups"][0]["rules"] if r.get("alert") == (
            "ClassifierBacklogWithoutConsumers"))  # fmt: skip
        # Its recording rule is evaluated once per second, after the scrape: wait for it.
        firing = wait_until(lambda: prometheus.query(alert["expr"]), 10, "the alert expression to return data")
        result.alert_without_consumers = [(s.labels, s.value) for s in firing]

        # 3. A worker works the backlog off, while a request long-polls the last job (the
        # long-poll's checks count only for a request that waits).
        last: dict[str, str] = {}

        def long_poll_last() -> None:
            with httpx.Client(base_url=f"http://127.0.0.1:{stack.results_port}", timeout=40) as client:
                last["status"] = client.get(f"/v1/jobs/{ids[-1]}", params={"wait": 30}).json()["status"]

        waiting = threading.Thread(target=long_poll_last)
        waiting.start()
        stack.start_worker(0)
        write_worker_targets(workers_file, [stack.worker_port], pools=["default"])
        stack.wait_ready(timeout=120, names=["worker-0"])
        for job_id in ids:
            job = results.get(f"/v1/jobs/{job_id}", params={"wait": 30}).json()
            assert job["status"] == "succeeded", job
        waiting.join(40)
        assert last == {"status": "succeeded"}
        # A JPEG whose EXIF Pillow cannot write back: the gateway accepts it, the worker fails it.
        broken = ("broken.jpg", bad_exif_images()["jpeg-rational-as-text"], "image/jpeg")
        failing = gateway.post("/v1/jobs", files={"file": broken}, data={"model": "efficientnet_lite0"})
        assert failing.status_code == 202, failing.text
        assert results.get(failing.headers["location"], params={"wait": 30}).json()["status"] == "failed"
        assert results.get(f"/v1/jobs/{uuid.uuid4().hex}").status_code == 404
        assert results.get("/v1/jobs/not-an-id").status_code in (404, 422)
        finished = len(ids) + 1
        wait_until(
            lambda: (
                (prometheus.value('sum(classifier_jobs_processed_total{outcome=~"succeeded|failed"})') or 0) >= finished
            ),
            20,
            "Prometheus to see every finished job",
        )
        time.sleep(3)  # a few more scrapes and rule evaluations, so that rates have two samples
        result.evaluated_at = time.time()
        print(f"scenario ready after {time.monotonic() - started:.1f} s")
        yield result
    finally:
        stack.down()
        server.stop()
        prometheus.close()
        management("DELETE", f"/vhosts/{urllib.parse.quote(vhost, safe='')}")


# --- (b) the HPA's metric ---------------------------------------------------------------------


def test_adapter_backlog_query_equals_the_true_backlog(scenario: Scenario) -> None:
    assert MAX_LENGTH <= scenario.accepted <= MAX_LENGTH + 1
    assert scenario.refused == [429] * (SUBMITTED - scenario.accepted)
    assert scenario.true_backlog == scenario.accepted
    assert scenario.adapter_backlog == scenario.accepted


def test_backlog_without_consumers_alert_expression_fires_with_the_backlog(scenario: Scenario) -> None:
    (labels, value), *others = scenario.alert_without_consumers
    assert others == []
    assert labels["queue"] == QUEUE
    assert value == scenario.accepted


# --- (a) every expression returns data --------------------------------------------------------


def vector_selectors(expr: str) -> list[str]:
    """The series selectors of a PromQL expression (``name{matchers}`` or a bare name), found
    lexically: function names, keywords, grouping label lists, range durations and string
    arguments (label_replace's) are skipped; a matcher's string is kept as written."""
    strings: list[str] = []

    def hide(match: re.Match[str]) -> str:
        strings.append(match.group(0))
        return f"\0{len(strings) - 1}\0"

    text = re.sub(r'"(?:[^"\\]|\\.)*"', hide, expr)  # so that no bracket or name inside a string counts
    text = re.sub(r"\[[^\]]*\]", "", text)  # [5m], [$__rate_interval]
    text = re.sub(r"\b(by|on|without|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    keywords = {"by", "on", "without", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool"}
    selectors = []
    pattern = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^{}]*\})?(\s*\()?")
    for match in pattern.finditer(text):
        name, matchers, call = match.groups()
        if call or name in keywords or (match.start() > 0 and text[match.start() - 1].isdigit()):
            continue
        selectors.append(name + re.sub(r"\0(\d+)\0", lambda m: strings[int(m.group(1))], matchers or ""))
    return selectors


def test_vector_selectors_finds_the_series_of_an_expression() -> None:
    expr = (
        'sum by (namespace, queue) (rate(classifier_jobs_processed_total{outcome=~"a|b"}[5m]))\n'
        '/ on (namespace) clamp_min(classifier:workers_ready:sum, 1) > 0.5 and up{job=~".*x.*"} == 0\n'
        'or label_replace(q{queue=~"a\\\\.[a-z]+\\\\.dead"}, "pool", "$1", "queue", "a\\\\.([a-z]+)")'
    )
    assert vector_selectors(expr) == [
        'classifier_jobs_processed_total{outcome=~"a|b"}',
        "classifier:workers_ready:sum",
        'up{job=~".*x.*"}',
        'q{queue=~"a\\\\.[a-z]+\\\\.dead"}',
    ]


def excluded_reason(expr: str) -> str | None:
    return next((reason for needle, reason in EXCLUDED.items() if needle in expr), None)


def returning_expressions() -> list[tuple[str, str]]:
    """Dashboards, recording rules and the adapter query: each must return data."""
    records = [(name, expr) for name, expr in rule_expressions() if not name.startswith("Classifier")]
    return dashboard_expressions() + records + adapter_expressions()


def alert_expressions() -> list[tuple[str, str]]:
    return [(name, expr) for name, expr in rule_expressions() if name.startswith("Classifier")]


def test_the_expression_lists_are_complete() -> None:
    rules = yaml.safe_load(RULES.read_text())["groups"][0]["rules"]
    assert len(alert_expressions()) == sum("alert" in r for r in rules) >= 9
    assert len(returning_expressions()) == len(dashboard_expressions()) + sum("record" in r for r in rules) + 2


def test_every_dashboard_rule_and_adapter_expression_returns_data(scenario: Scenario) -> None:
    empty, excluded, checked = [], [], 0
    for where, expr in returning_expressions():
        reason = excluded_reason(expr)
        if reason:
            excluded.append(where)
            continue
        if SERVER_ERRORS in expr:
            expr = expr.replace(SERVER_ERRORS, CLIENT_ERRORS)
        if not scenario.prometheus.query(expr, at=scenario.evaluated_at):
            empty.append(f"{where}: {expr}")
        checked += 1
    assert empty == [], "\n".join(empty)
    assert checked >= 40
    # The exclusions: the HPA panels of the overview dashboard and the namespaced adapter query.
    assert sorted(excluded) == sorted(EXPECTED_EXCLUSIONS), excluded


def test_every_alert_expression_evaluates_and_its_series_exist(scenario: Scenario) -> None:
    """Alert expressions return data only while their condition holds (the scenario is healthy
    at the end), so each must evaluate without error and each of its series selectors must match."""
    recorded = dict(rule_expressions())
    missing = []
    for where, expr in alert_expressions():
        scenario.prometheus.query(expr, at=scenario.evaluated_at)  # raises on an error
        for selector in vector_selectors(expr):
            if excluded_reason(selector):
                continue
            # A series recorded from 5xx answers is empty; evaluate its rule with 4xx instead.
            if SERVER_ERRORS in recorded.get(selector, ""):
                selector = recorded[selector]
            if SERVER_ERRORS in selector:
                selector = selector.replace(SERVER_ERRORS, CLIENT_ERRORS)
            if not scenario.prometheus.query(selector, at=scenario.evaluated_at):
                missing.append(f"{where}: {selector}")
    assert missing == [], "\n".join(missing)
    # The queue metrics are there, so the alert about their absence is quiet.
    absent = next(expr for name, expr in alert_expressions() if name == "ClassifierQueueMetricsAbsent")
    assert scenario.prometheus.query(absent, at=scenario.evaluated_at) == []
