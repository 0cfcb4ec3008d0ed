"""Every PromQL expression we ship parses, and names only metrics that exist.

Sources: the Grafana dashboards' panel queries (with Grafana's variables given concrete values),
the rule file, and the adapter's metricsQuery as the adapter renders it (locally and for an HPA
in a namespace). promtool has no bare-expression checker, so the expressions are written as
recording rules and checked with `promtool check rules`, which parses and type-checks them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import prometheus_client
import pytest
import yaml

from classifier_common import metrics as classifier_metrics
from experiments.adapter_query import backlog_query
from tests.monitoring.conftest import DASHBOARDS, RULES, PromtoolRunner, write_recording_rules

# Values Grafana substitutes before sending a query.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "30s",
    "${namespace}": ".*",
    "$namespace": ".*",
    "${model}": ".*",
    "$model": ".*",
    "${pool}": ".*",
    "$pool": ".*",
}

# Series that come from outside our services: the rabbitmq_prometheus plugin's detailed
# endpoint (queue_coarse_metrics, queue_consumer_count), kube-state-metrics' HPA series, and
# Prometheus' own `up`.
EXTERNAL_METRICS = {
    "rabbitmq_detailed_queue_messages_ready",
    "rabbitmq_detailed_queue_messages_unacked",
    "rabbitmq_detailed_queue_messages",
    "rabbitmq_detailed_queue_consumers",
    "kube_horizontalpodautoscaler_status_desired_replicas",
    "kube_horizontalpodautoscaler_status_current_replicas",
    "kube_horizontalpodautoscaler_spec_max_replicas",
    "kube_horizontalpodautoscaler_spec_target_metric",
    "kube_horizontalpodautoscaler_status_condition",
    "kube_deployment_spec_replicas",
    "up",
}
PROMQL_WORDS = {
    "sum", "max", "min", "avg", "count", "rate", "increase", "histogram_quantile", "clamp_min",
    "absent", "by", "on", "and", "or", "unless", "bool", "group_left", "without", "le", "label_replace",
    "group",
}  # fmt: skip


def dashboard_expressions() -> list[tuple[str, str]]:
    found = []
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                expr = target["expr"]
                for variable, value in GRAFANA_VARIABLES.items():
                    expr = expr.replace(variable, value)
                found.append((f"{path.name}: {panel['title']} {target['refId']}", expr))
    return found


def rule_expressions() -> list[tuple[str, str]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [(rule.get("record") or rule["alert"], rule["expr"]) for group in groups for rule in group["rules"]]


def adapter_expressions() -> list[tuple[str, str]]:
    return [
        ("adapter (local)", backlog_query(namespace=None)),
        ("adapter (namespace classifier)", backlog_query(namespace="classifier")),
    ]


def exported_metric_names() -> set[str]:
    """Sample names our services export, as prometheus_client writes them."""
    names: set[str] = set()
    for value in vars(classifier_metrics).values():
        if not isinstance(value, prometheus_client.metrics.MetricWrapperBase):
            continue
        for family in value.describe():
            if family.type == "counter":
                names |= {family.name + "_total", family.name + "_created"}
            elif family.type == "histogram":
                names |= {family.name + s for s in ("_bucket", "_count", "_sum", "_created")}
            else:
                names.add(family.name)
    return names


def recorded_names() -> set[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["record"] for group in groups for rule in group["rules"] if "record" in rule}


def metric_names_in(expr: str) -> set[str]:
    without_strings = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    without_ranges = re.sub(r"\[[^\]]*\]", "", without_strings)
    without_labels = re.sub(r"\{[^}]*\}", "{}", without_ranges)
    # `by (...)`/`on (...)` lists hold label names, not metrics.
    without_groupings = re.sub(r"\b(by|on|without|ignoring|group_left|group_right)\s*\([^)]*\)", "", without_labels)
    identifiers = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", without_groupings))
    return {word for word in identifiers if word not in PROMQL_WORDS}


ALL_EXPRESSIONS = dashboard_expressions() + rule_expressions() + adapter_expressions()


def test_dashboards_have_queries_to_check() -> None:
    assert len(dashboard_expressions()) >= 30


def test_grafana_variables_were_all_substituted() -> None:
    for where, expr in dashboard_expressions():
        assert "$" not in expr, f"{where}: unsubstituted variable in {expr}"


def test_every_expression_parses(run_promtool: PromtoolRunner, tmp_path: Path) -> None:
    rule_file = tmp_path / "expressions.yaml"
    write_recording_rules(rule_file, [expr for _, expr in ALL_EXPRESSIONS])
    result = run_promtool("check", "rules", str(rule_file))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(ALL_EXPRESSIONS)} rules found" in result.stdout


def test_the_parse_check_rejects_a_broken_expression(run_promtool: PromtoolRunner, tmp_path: Path) -> None:
    rule_file = tmp_path / "broken.yaml"
    write_recording_rules(rule_file, ["sum by (queue (rabbitmq_detailed_queue_messages_ready)"])
    result = run_promtool("check", "rules", str(rule_file))
    assert result.returncode != 0
    assert "parse error" in result.stdout + result.stderr


@pytest.mark.parametrize(("where", "expr"), ALL_EXPRESSIONS, ids=[w for w, _ in ALL_EXPRESSIONS])
def test_expressions_name_only_existing_metrics(where: str, expr: str) -> None:
    known = exported_metric_names() | recorded_names() | EXTERNAL_METRICS
    unknown = metric_names_in(expr) - known
    assert unknown == set(), f"{where}: unknown metric(s) {sorted(unknown)} in {expr}"
