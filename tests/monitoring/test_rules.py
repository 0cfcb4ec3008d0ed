"""The Prometheus rule file and the local Prometheus config, checked and unit-tested by promtool."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from devstack.targets import worker_target_groups, write_worker_targets
from tests.monitoring.conftest import LOCAL_CONFIG, RULE_TESTS, RULES, PromtoolRunner

SEVERITIES = {"critical", "warning", "info"}


def _rules() -> list[dict]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _alerts() -> list[dict]:
    return [rule for rule in _rules() if "alert" in rule]


def test_promtool_check_rules_accepts_the_rule_file(run_promtool: PromtoolRunner) -> None:
    result = run_promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in result.stdout


def test_promtool_unit_tests_pass(run_promtool: PromtoolRunner) -> None:
    result = run_promtool("test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_unit_tests_catch_a_broken_threshold(run_promtool: PromtoolRunner, tmp_path: Path) -> None:
    """The unit tests are sharp: the same tests against a rule file whose failure-ratio
    threshold was loosened must fail."""
    broken = RULES.read_text().replace(
        "classifier:job_failure_ratio:rate5m > 0.1", "classifier:job_failure_ratio:rate5m > 0.5"
    )
    assert broken != RULES.read_text()
    (tmp_path / RULES.name).write_text(broken)
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    result = run_promtool("test", "rules", RULE_TESTS.name, cwd=tmp_path)
    assert result.returncode != 0
    assert "ClassifierJobFailureRatioHigh" in result.stdout + result.stderr


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in tests:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {alert["alert"] for alert in _alerts()}
    assert names - firing == set(), "alerts without a firing case"
    assert names - quiet == set(), "alerts without a not-firing case"


def test_every_alert_has_severity_summary_description_and_runbook() -> None:
    for alert in _alerts():
        assert alert["labels"]["severity"] in SEVERITIES, alert["alert"]
        annotations = alert["annotations"]
        for key in ("summary", "description", "runbook"):
            assert annotations.get(key, "").strip(), f"{alert['alert']}: no {key}"
        anchor = alert["alert"].lower()
        assert annotations["runbook"].startswith(f"docs/metrics.md#{anchor}:"), alert["alert"]


def test_runbook_anchors_exist_in_the_metrics_doc(repo: Path) -> None:
    doc = (repo / "docs" / "metrics.md").read_text()
    for alert in _alerts():
        assert f"### {alert['alert']}" in doc, f"docs/metrics.md has no section for {alert['alert']}"


def test_local_prometheus_config_is_valid_with_worker_targets(run_promtool: PromtoolRunner, tmp_path: Path) -> None:
    """local.yml, its rule file and a worker targets file as the experiments write it, laid
    out as in the repo: promtool resolves the relative paths and validates the targets."""
    config_dir = tmp_path / "monitoring" / "prometheus"
    config_dir.mkdir(parents=True)
    shutil.copy(LOCAL_CONFIG, config_dir / LOCAL_CONFIG.name)
    shutil.copy(RULES, config_dir / RULES.name)
    write_worker_targets(tmp_path / "data" / "stack" / "prometheus-targets.json", [9100, 9101])

    result = run_promtool("check", "config", str(config_dir / LOCAL_CONFIG.name))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "WARNING" not in output, output
    assert "is valid prometheus config file syntax" in output


def test_local_config_scrapes_rabbitmq_per_queue_metrics() -> None:
    config = yaml.safe_load(LOCAL_CONFIG.read_text())
    (rabbitmq,) = [job for job in config["scrape_configs"] if job["job_name"] == "rabbitmq"]
    assert rabbitmq["metrics_path"] == "/metrics/detailed"
    assert set(rabbitmq["params"]["family"]) == {"queue_coarse_metrics", "queue_consumer_count"}
    assert rabbitmq["static_configs"][0]["targets"] == ["127.0.0.1:15692"]
    assert config["rule_files"] == [RULES.name]
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    # ClassifierWorkerNotReady matches up{job=~".*classifier-worker.*"}.
    assert "classifier-worker" in jobs


def test_local_worker_targets_carry_the_pool_the_rules_group_by(run_promtool: PromtoolRunner, tmp_path: Path) -> None:
    """Locally the targets file gives each worker process its pool, as the chart's PodMonitor
    does on Kubernetes, so the per-pool rules see the same `pool` label."""
    groups = worker_target_groups([9100, 9101, 9102], pools=["lite", "big", "big"])
    assert [g["labels"] for g in groups] == [
        {"worker": "0", "pool": "lite"},
        {"worker": "1", "pool": "big"},
        {"worker": "2", "pool": "big"},
    ]
    assert all("pool" not in g["labels"] for g in worker_target_groups([9100, 9101]))
    with pytest.raises(ValueError, match="one pool per port"):
        worker_target_groups([9100, 9101], pools=["lite"])
    rules = yaml.safe_load(RULES.read_text())["groups"][0]["rules"]
    pooled = {r["record"] for r in rules if "record" in r and "pool" in r["expr"]}
    assert {"classifier:pool_workers_ready:sum", "classifier:backlog_per_worker"} <= pooled

    config_dir = tmp_path / "monitoring" / "prometheus"
    config_dir.mkdir(parents=True)
    shutil.copy(LOCAL_CONFIG, config_dir / LOCAL_CONFIG.name)
    shutil.copy(RULES, config_dir / RULES.name)
    write_worker_targets(tmp_path / "data" / "stack" / "prometheus-targets.json", [9100, 9101], pools=["lite", "big"])
    result = run_promtool("check", "config", str(config_dir / LOCAL_CONFIG.name))
    assert result.returncode == 0, result.stdout + result.stderr
