"""The chart's monitoring and autoscaling objects, rendered by the real helm.

The custom resources (monitoring.coreos.com ServiceMonitor/PodMonitor/PrometheusRule, keda.sh
ScaledObject) are validated against the pinned models of tools/crd-schemas (below and in
tests/k8s, every scenario). What a schema cannot see is checked here:
required fields, selectors that match the pods' (or Services') labels, ports that exist by name
on the selected objects, the rule file and dashboards embedded unchanged, the ScaledObject's
query equal to the one prometheus-adapter runs for the HPA.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from experiments.adapter_query import external_rule, render_metrics_query
from tests.k8s.chart import CHART, NAMESPACE, RenderError, find, one, render, render_text, validate, validate_all
from tests.monitoring.conftest import DASHBOARDS, REPO, RULES

MONITORING = ("--set", "monitoring.enabled=true")
MONITORING_VALUES = ("--values", str(CHART / "ci" / "monitoring-values.yaml"))
KEDA_VALUES = ("--values", str(CHART / "ci" / "keda-values.yaml"))
CHART_RULES = CHART / "files" / "prometheus" / "alerts.yaml"
CHART_DASHBOARDS = CHART / "files" / "dashboards"
MONITORING_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}


# --- the copies in files/ -----------------------------------------------------------------------


def test_chart_copies_of_rules_and_dashboards_are_current() -> None:
    """helm reads only files inside the chart; `make chart-files` copies them there."""
    assert CHART_RULES.read_bytes() == RULES.read_bytes(), "run `make chart-files`"
    assert sorted(p.name for p in CHART_DASHBOARDS.glob("*.json")) == sorted(p.name for p in DASHBOARDS)
    for source in DASHBOARDS:
        assert (CHART_DASHBOARDS / source.name).read_bytes() == source.read_bytes(), "run `make chart-files`"


def test_make_chart_files_copies_them(tmp_path: Path) -> None:
    result = subprocess.run(
        ["make", "-n", "chart-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout  # fmt: skip
    assert "monitoring/prometheus/alerts.yaml helm/classifier/files/prometheus/alerts.yaml" in result
    assert "monitoring/grafana/dashboards/*.json" in result


# --- off by default -----------------------------------------------------------------------------


def test_default_render_has_no_custom_resources_and_no_dashboards() -> None:
    """Off by default: without kube-prometheus-stack the CRDs do not exist, and k8s/ (the
    default render) must apply to any cluster."""
    objects = render()
    assert {o["kind"] for o in objects} & (MONITORING_KINDS | {"ScaledObject"}) == set()
    assert not [c for c in find(objects, "ConfigMap") if "grafana_dashboard" in c["metadata"]["labels"]]
    one(objects, "HorizontalPodAutoscaler", "classifier-worker-default")


@pytest.mark.parametrize(
    ("switch", "gone"),
    [
        ("monitoring.monitors.enabled=false", {"ServiceMonitor", "PodMonitor"}),
        ("monitoring.prometheusRule.enabled=false", {"PrometheusRule"}),
    ],
)
def test_each_monitoring_part_has_its_own_switch(switch: str, gone: set[str]) -> None:
    kinds = {o["kind"] for o in render(*MONITORING, "--set", switch)}
    assert kinds & gone == set()
    assert kinds & (MONITORING_KINDS - gone)
    no_dashboards = render(*MONITORING, "--set", "monitoring.dashboards.enabled=false")
    assert not [c for c in find(no_dashboards, "ConfigMap") if "-dashboard-" in c["metadata"]["name"]]


# --- monitors -----------------------------------------------------------------------------------


def matches(selector: dict, labels: dict) -> bool:
    return bool(selector) and selector.items() <= labels.items()


def workloads_selected(objects: list[dict], selector: dict) -> list[dict]:
    """Deployments and StatefulSets whose pods carry every label of ``selector``."""
    return [
        o
        for o in objects
        if o["kind"] in ("Deployment", "StatefulSet") and matches(selector, o["spec"]["template"]["metadata"]["labels"])
    ]


def container_ports(workload: dict) -> dict[str, int]:
    spec = workload["spec"]["template"]["spec"]
    return {p["name"]: p["containerPort"] for c in spec["containers"] for p in c.get("ports", []) if "name" in p}


def test_monitoring_objects_validate_against_the_prometheus_operator_model() -> None:
    objects = [o for o in render(*MONITORING_VALUES) if o["kind"] in MONITORING_KINDS]
    assert {o["kind"] for o in objects} == MONITORING_KINDS
    assert validate_all(objects) == ["package"] * len(objects)
    monitor = copy.deepcopy(one(objects, "PodMonitor", "classifier-worker"))
    monitor["spec"]["podMetricsEndpoints"][0]["intervall"] = "15s"
    with pytest.raises(AssertionError, match="intervall"):
        validate(monitor)


def test_service_monitors_select_the_gateway_and_results_services_and_their_ports() -> None:
    objects = render(*MONITORING)
    monitors = {m["metadata"]["name"]: m for m in find(objects, "ServiceMonitor")}
    assert set(monitors) == {"classifier-gateway", "classifier-results"}
    services = find(objects, "Service")
    for name, monitor in monitors.items():
        spec = monitor["spec"]
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        assert spec["namespaceSelector"] == {"matchNames": [NAMESPACE]}
        selected = [s for s in services if matches(spec["selector"]["matchLabels"], s["metadata"]["labels"])]
        assert [s["metadata"]["name"] for s in selected] == [name], name
        (service,) = selected
        ports = {p["name"]: p for p in service["spec"]["ports"]}
        (endpoint,) = spec["endpoints"]
        assert endpoint["port"] in ports
        assert endpoint["path"] == "/metrics"
        # Our HTTP metrics carry their own `service` label: keep it (else exported_service).
        assert endpoint["honorLabels"] is True
        # The Service's target port is a named port of the pods it selects.
        (deployment,) = workloads_selected(objects, service["spec"]["selector"])
        assert ports[endpoint["port"]]["targetPort"] in container_ports(deployment)


def test_pod_monitors_select_the_workers_and_rabbitmq_by_a_port_they_have() -> None:
    objects = render(*MONITORING)
    monitors = {m["metadata"]["name"]: m for m in find(objects, "PodMonitor")}
    assert set(monitors) == {"classifier-worker", "classifier-rabbitmq"}
    expected = {
        "classifier-worker": ("Deployment", "classifier-worker-default", "/metrics"),
        "classifier-rabbitmq": ("StatefulSet", "classifier-rabbitmq", "/metrics/detailed"),
    }
    for name, monitor in monitors.items():
        spec = monitor["spec"]
        assert spec["namespaceSelector"] == {"matchNames": [NAMESPACE]}
        selected = workloads_selected(objects, spec["selector"]["matchLabels"])
        kind, workload, path = expected[name]
        assert [(w["kind"], w["metadata"]["name"]) for w in selected] == [(kind, workload)]
        (endpoint,) = spec["podMetricsEndpoints"]
        assert endpoint["port"] in container_ports(selected[0]), name
        assert endpoint["path"] == path
    # The per-queue families the adapter, the rules and the dashboards read.
    rabbit = monitors["classifier-rabbitmq"]["spec"]["podMetricsEndpoints"][0]
    assert rabbit["params"] == {"family": ["queue_coarse_metrics", "queue_consumer_count"]}
    assert container_ports(one(objects, "StatefulSet", "classifier-rabbitmq"))["prometheus"] == 15692


def test_worker_pod_monitor_yields_the_job_label_the_not_ready_alert_matches() -> None:
    """The Prometheus Operator labels a PodMonitor's targets job="<namespace>/<name>"."""
    monitor = one(render(*MONITORING), "PodMonitor", "classifier-worker")
    job = f"{monitor['metadata']['namespace']}/{monitor['metadata']['name']}"
    rules = yaml.safe_load(RULES.read_text())["groups"][0]["rules"]
    expr = next(r["expr"] for r in rules if r.get("alert") == "ClassifierWorkerNotReady")
    pattern = re.search(r'up\{job=~"([^"]+)"\}', expr).group(1)
    assert re.fullmatch(pattern, job)
    assert not re.fullmatch(pattern, f"{NAMESPACE}/classifier-gateway")


def test_no_rabbitmq_monitor_for_an_external_broker() -> None:
    objects = render(*MONITORING, "--values", str(CHART / "ci" / "external-services-values.yaml"))
    assert [m["metadata"]["name"] for m in find(objects, "PodMonitor")] == ["classifier-worker"]


def test_monitoring_labels_go_on_every_monitoring_object() -> None:
    objects = render(*MONITORING_VALUES)
    monitoring = [o for o in objects if o["kind"] in MONITORING_KINDS or "-dashboard-" in o["metadata"]["name"]]
    assert len(monitoring) == 2 + 2 + 1 + len(DASHBOARDS)
    for obj in monitoring:
        assert obj["metadata"]["labels"]["release"] == "kube-prometheus-stack", obj["metadata"]["name"]
        assert obj["metadata"]["namespace"] == NAMESPACE


# --- rules and dashboards ----------------------------------------------------------------------


def test_prometheus_rule_embeds_the_rule_file_unchanged() -> None:
    rule = one(render(*MONITORING), "PrometheusRule", "classifier")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["spec"] == yaml.safe_load(RULES.read_text())
    # Prometheus' own templates reach Prometheus: helm did not evaluate them.
    annotations = [r["annotations"]["summary"] for r in rule["spec"]["groups"][0]["rules"] if "alert" in r]
    assert any("{{ $value }}" in a for a in annotations)


def test_prometheus_rule_follows_the_queue_name() -> None:
    rule = one(render(*KEDA_VALUES), "PrometheusRule", "classifier")
    exprs = [r["expr"] for group in rule["spec"]["groups"] for r in group["rules"]]
    # The pools' queues jobs.images.<pool>, their dead-letter queues jobs.images.<pool>.dead.
    assert any(r'queue=~"jobs\\.images\\.[a-z0-9-]+"' in e for e in exprs)
    assert any(r'queue=~"jobs\\.images\\.[a-z0-9-]+\\.dead"' in e for e in exprs)
    assert not any("classifier.jobs" in e or r"classifier\\.jobs" in e for e in exprs)
    expected = RULES.read_text().replace(r"classifier\\.jobs\\.", r"jobs\\.images\\.")
    assert rule["spec"] == yaml.safe_load(expected)


def test_dashboards_are_configmaps_for_the_grafana_sidecar() -> None:
    objects = render(*MONITORING)
    configmaps = [c for c in find(objects, "ConfigMap") if c["metadata"]["labels"].get("grafana_dashboard") == "1"]
    assert sorted(c["metadata"]["name"] for c in configmaps) == [
        "classifier-dashboard-model",
        "classifier-dashboard-overview",
    ]  # noqa: E501
    stack = yaml.safe_load((REPO / "monitoring" / "kube-prometheus-stack" / "values.yaml").read_text())
    sidecar = stack["grafana"]["sidecar"]["dashboards"]
    for configmap in configmaps:
        assert configmap["metadata"]["labels"][sidecar["label"]] == sidecar["labelValue"]
        assert configmap["metadata"]["annotations"][sidecar["folderAnnotation"]] == "Classifier"
        ((key, text),) = configmap["data"].items()
        assert json.loads(text) == json.loads((REPO / "monitoring" / "grafana" / "dashboards" / key).read_text())
        # Small enough for `kubectl apply` (its last-applied annotation is capped at 256 KiB).
        assert len(text.encode()) < 256 * 1024


# --- KEDA ---------------------------------------------------------------------------------------


def test_keda_replaces_the_hpa_with_a_scaled_object_on_the_same_backlog() -> None:
    objects = render(*KEDA_VALUES)
    assert find(objects, "HorizontalPodAutoscaler") == []
    values = yaml.safe_load((CHART / "ci" / "keda-values.yaml").read_text())
    scaled = one(objects, "ScaledObject", "classifier-worker-default")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    spec = scaled["spec"]
    deployment = one(objects, "Deployment", "classifier-worker-default")
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "classifier-worker-default",
    }
    assert "replicas" not in deployment["spec"]  # KEDA owns the count
    assert spec["minReplicaCount"] == 0
    assert spec["maxReplicaCount"] == values["autoscaling"]["maxReplicas"]
    hpa_config = spec["advanced"]["horizontalPodAutoscalerConfig"]
    assert hpa_config["name"] == "classifier-worker-default"
    assert hpa_config["behavior"] == yaml.safe_load((CHART / "values.yaml").read_text())["autoscaling"]["behavior"]
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "prometheus"
    assert trigger["metricType"] == "AverageValue"
    metadata = trigger["metadata"]
    assert metadata["threshold"] == "8"
    assert metadata["activationThreshold"] == "2"
    assert metadata["ignoreNullValues"] == "false"
    assert metadata["serverAddress"].startswith("http://kube-prometheus-stack-prometheus.monitoring.svc")
    # Exactly the query the adapter would run for the HPA in this namespace and queue.
    rule = external_rule()
    assert metadata["query"] == render_metrics_query(rule, {"queue": "jobs.images.default"}, namespace=NAMESPACE)


def test_keda_query_for_an_external_broker_has_no_namespace_matcher() -> None:
    objects = render(*KEDA_VALUES, "--values", str(CHART / "ci" / "external-services-values.yaml"))
    query = one(objects, "ScaledObject", "classifier-worker-default")["spec"]["triggers"][0]["metadata"]["query"]
    assert query == render_metrics_query(external_rule(), {"queue": "jobs.images.default"}, namespace=None)


def test_the_hpa_and_keda_scale_on_the_same_queue_and_target() -> None:
    hpa = one(render("--set", "config.queueName=q1"), "HorizontalPodAutoscaler", "classifier-worker-default")
    scaled = one(
        render("--set", "config.queueName=q1", "--set", "autoscaling.keda.enabled=true"),
        "ScaledObject",
        "classifier-worker-default",
    )  # noqa: E501
    metric = hpa["spec"]["metrics"][0]["external"]
    trigger = scaled["spec"]["triggers"][0]["metadata"]
    assert metric["metric"]["selector"]["matchLabels"] == {"queue": "q1.default"}
    assert 'queue="q1.default"' in trigger["query"]
    assert metric["target"]["averageValue"] == trigger["threshold"]
    assert hpa["spec"]["behavior"] == scaled["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert hpa["spec"]["maxReplicas"] == scaled["spec"]["maxReplicaCount"]


def test_keda_without_autoscaling_is_refused() -> None:
    with pytest.raises(RenderError, match="autoscaling.keda.enabled needs autoscaling.enabled"):
        render_text("--set", "autoscaling.enabled=false", "--set", "autoscaling.keda.enabled=true")


@pytest.mark.parametrize(
    "setting", ["autoscaling.keda.minReplicaCount=-1", "autoscaling.keda.enabld=true", "monitoring.intervall=5s"]
)  # noqa: E501
def test_schema_rejects_bad_monitoring_and_keda_values(setting: str) -> None:
    with pytest.raises(RenderError):
        render_text("--set", setting)


# --- scale-down never kills a worker mid-job ----------------------------------------------------


@pytest.mark.parametrize(
    "args", [(), MONITORING_VALUES, KEDA_VALUES, ("--values", str(CHART / "ci" / "gpu-values.yaml"))],
    ids=["default", "monitoring", "keda", "gpu"],
)  # fmt: skip
def test_a_stopped_worker_has_time_to_finish_its_job(args: tuple[str, ...]) -> None:
    """Scale-down (HPA or KEDA) deletes a pod: preStop runs, then SIGTERM, on which the worker
    stops consuming, finishes the job in hand within CLASSIFIER_SHUTDOWN_GRACE_S and exits 0.
    Kubernetes kills it only after terminationGracePeriodSeconds, counted from the start of
    preStop: it must exceed both. tests/monitoring/test_scale_down_drain.py runs the real worker
    with these rendered numbers."""
    objects = render(*args)
    worker = one(objects, "Deployment", "classifier-worker-default")["spec"]["template"]["spec"]
    (container,) = worker["containers"]
    pre_stop = container.get("lifecycle", {}).get("preStop")
    sleep_s = (
        float(re.search(r"sleep\((\d+(?:\.\d+)?)\)", pre_stop["exec"]["command"][-1]).group(1)) if pre_stop else 0.0
    )
    env = {e["name"]: e.get("value") for e in container["env"]}
    shutdown_grace_s = float(env["CLASSIFIER_SHUTDOWN_GRACE_S"])
    assert shutdown_grace_s >= 30  # far beyond one CPU inference batch of the shipped models
    assert worker["terminationGracePeriodSeconds"] > sleep_s + shutdown_grace_s


# --- worker pools ------------------------------------------------------------------------------

POOLS_VALUES = ("--values", str(CHART / "ci" / "pools-values.yaml"))


def test_the_worker_pod_monitor_scrapes_every_pool_and_labels_its_series_with_the_pool() -> None:
    objects = render(*MONITORING, *POOLS_VALUES)
    monitor = one(objects, "PodMonitor", "classifier-worker")
    selected = workloads_selected(objects, monitor["spec"]["selector"]["matchLabels"])
    assert sorted(w["metadata"]["name"] for w in selected) == ["classifier-worker-gpu", "classifier-worker-lite"]
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    # Prometheus names a pod label's meta label after it, every other character an underscore.
    (relabel,) = endpoint["relabelings"]
    source = relabel["sourceLabels"][0].removeprefix("__meta_kubernetes_pod_label_")
    pool_label = next(k for k in selected[0]["spec"]["template"]["metadata"]["labels"] if k.endswith("pool"))
    assert source == re.sub(r"[^a-zA-Z0-9_]", "_", pool_label)
    assert relabel["targetLabel"] == "pool"
    assert relabel.get("action", "replace") == "replace"
    validate(monitor)


def test_each_pools_scaled_object_reads_its_own_queue_as_the_adapter_would(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "autoscaling": {"keda": {"enabled": True}},
                "workerPools": [
                    {"name": "lite", "models": ["efficientnet_lite0"]},
                    {"name": "big", "models": ["resnet50"], "autoscaling": {"maxReplicas": 2}},
                ],
            }
        )
    )
    objects = render(*MONITORING, "--values", str(values))
    for pool, max_replicas in (("lite", 4), ("big", 2)):
        scaled = one(objects, "ScaledObject", f"classifier-worker-{pool}")
        assert scaled["spec"]["scaleTargetRef"]["name"] == f"classifier-worker-{pool}"
        assert scaled["spec"]["maxReplicaCount"] == max_replicas
        query = scaled["spec"]["triggers"][0]["metadata"]["query"]
        assert query == render_metrics_query(external_rule(), {"queue": f"classifier.jobs.{pool}"}, namespace=NAMESPACE)
        validate(scaled)
