"""prometheus-adapter and kube-prometheus-stack values: the HPA's metric is served, the query
adds up the right series, and the stack picks up our monitors, rules and dashboards."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import yaml

from experiments.adapter_query import (
    backlog_query,
    external_rule,
    load_external_rules,
    render_metrics_query,
)
from tests.monitoring.conftest import (
    ADAPTER_VALUES,
    HPA_METRIC_NAME,
    STACK_VALUES,
    PromtoolRunner,
)


def test_exactly_one_external_rule_serves_the_hpa_metric() -> None:
    names = [rule.metric_name for rule in load_external_rules(ADAPTER_VALUES)]
    assert names.count(HPA_METRIC_NAME) == 1, names
    rule = external_rule(HPA_METRIC_NAME, ADAPTER_VALUES)
    assert rule.series_name == "rabbitmq_detailed_queue_messages_ready"
    # Namespaced: each release's HPA sees the queue of its own namespace only.
    assert rule.namespaced


def test_rendered_query_matches_the_adapter_substitution() -> None:
    rule = external_rule(HPA_METRIC_NAME, ADAPTER_VALUES)
    query = render_metrics_query(rule, {"queue": "classifier.jobs"}, namespace="classifier")
    assert "<<" not in query and ">>" not in query
    # Selector labels first (in key order), then the HPA's namespace, Go-quoted.
    assert 'rabbitmq_detailed_queue_messages_ready{queue="classifier.jobs",namespace="classifier"}' in query
    assert 'rabbitmq_detailed_queue_messages_unacked{queue="classifier.jobs",namespace="classifier"}' in query
    local = backlog_query(namespace=None)
    assert 'rabbitmq_detailed_queue_messages_ready{queue="classifier.jobs.default"}' in local
    lite = backlog_query(queue="classifier.jobs.lite", namespace=None)
    assert 'rabbitmq_detailed_queue_messages_unacked{queue="classifier.jobs.lite"}' in lite


def test_backlog_query_adds_ready_and_unacked_of_its_queue_and_namespace(
    run_promtool: PromtoolRunner, tmp_path: Path
) -> None:
    """Evaluated by promtool on synthetic series: per namespace, ready + unacked of
    classifier.jobs.default only (not the dead-letter queue, not another release's queue)."""
    rules = {
        "groups": [
            {
                "name": "adapter",
                "rules": [
                    {"record": "adapter:backlog:namespaced", "expr": backlog_query(namespace="classifier")},
                    {"record": "adapter:backlog:local", "expr": backlog_query(namespace=None)},
                ],
            }
        ]
    }
    queue = "classifier.jobs.default"

    def sample(kind: str, namespace: str, queue: str) -> str:
        return f'rabbitmq_detailed_queue_messages_{kind}{{namespace="{namespace}",vhost="/",queue="{queue}"}}'

    series = [
        (sample("ready", "classifier", queue), "12x3"),
        (sample("unacked", "classifier", queue), "3x3"),
        (sample("ready", "classifier", f"{queue}.dead"), "7x3"),
        (sample("unacked", "classifier", f"{queue}.dead"), "0x3"),
        (sample("ready", "other", queue), "100x3"),
        (sample("unacked", "other", queue), "1x3"),
    ]
    tests = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in series],
                "promql_expr_test": [
                    {
                        "expr": "adapter:backlog:namespaced",
                        "eval_time": "2m",
                        "exp_samples": [{"labels": f'adapter:backlog:namespaced{{queue="{queue}"}}', "value": 15}],
                    },
                    {
                        # Without a namespace matcher (the local stack) every namespace adds up.
                        "expr": "adapter:backlog:local",
                        "eval_time": "2m",
                        "exp_samples": [{"labels": f'adapter:backlog:local{{queue="{queue}"}}', "value": 116}],
                    },
                ],
            }
        ],
    }
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules, sort_keys=False))
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests, sort_keys=False))
    result = run_promtool("test", "rules", "tests.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_adapter_queries_the_stack_prometheus() -> None:
    adapter = yaml.safe_load(ADAPTER_VALUES.read_text())
    stack = yaml.safe_load(STACK_VALUES.read_text())
    host = urlparse(adapter["prometheus"]["url"]).hostname
    assert host == f"{stack['fullnameOverride']}-prometheus.monitoring.svc"
    assert adapter["prometheus"]["port"] == 9090
    assert adapter["rules"]["default"] is False


def test_stack_selects_monitors_and_rules_of_every_release() -> None:
    spec = yaml.safe_load(STACK_VALUES.read_text())["prometheus"]["prometheusSpec"]
    for kind in ("serviceMonitor", "podMonitor", "probe", "rule", "scrapeConfig"):
        assert spec[f"{kind}SelectorNilUsesHelmValues"] is False, kind


def test_grafana_loads_labelled_dashboards_from_all_namespaces() -> None:
    grafana = yaml.safe_load(STACK_VALUES.read_text())["grafana"]
    dashboards = grafana["sidecar"]["dashboards"]
    assert dashboards["enabled"] is True
    assert dashboards["label"] == "grafana_dashboard"
    assert dashboards["labelValue"] == "1"
    assert dashboards["searchNamespace"] == "ALL"


def test_grafana_admin_password_is_not_in_values() -> None:
    text = STACK_VALUES.read_text()
    grafana = yaml.safe_load(text)["grafana"]
    assert grafana["admin"]["existingSecret"]
    assert "adminPassword" not in grafana
    assert "prom-operator" not in text
