"""Fixtures for the monitoring tests: the repo's monitoring files and the real promtool."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
import yaml

from devstack.paths import REPO

MONITORING = REPO / "monitoring"
RULES = MONITORING / "prometheus" / "alerts.yaml"
RULE_TESTS = MONITORING / "prometheus" / "alerts_test.yaml"
LOCAL_CONFIG = MONITORING / "prometheus" / "local.yml"
DASHBOARDS = sorted((MONITORING / "grafana" / "dashboards").glob("*.json"))
ADAPTER_VALUES = MONITORING / "prometheus-adapter" / "values.yaml"
STACK_VALUES = MONITORING / "kube-prometheus-stack" / "values.yaml"

# The worker HPA (helm chart) asks the adapter for this External metric.
HPA_METRIC_NAME = "classifier_queue_backlog"


@pytest.fixture(scope="session")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        # Not a skip: `make setup` installs it (requirements/apt-monitoring.txt).
        pytest.fail("promtool not found: install Debian's `prometheus` package (make setup does)")
    return path


PromtoolRunner = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def run_promtool(promtool: str) -> PromtoolRunner:
    def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False)

    return run


def write_recording_rules(path: Path, expressions: Iterable[str]) -> list[str]:
    """Write each expression as a recording rule (promtool has no bare expression checker,
    but `check rules` parses and type-checks every rule's expr). Returns the rule names."""
    names, rules = [], []
    for index, expr in enumerate(expressions):
        name = f"check:expr_{index}"
        names.append(name)
        rules.append({"record": name, "expr": expr})
    path.write_text(yaml.safe_dump({"groups": [{"name": "check", "rules": rules}]}, sort_keys=False))
    return names
