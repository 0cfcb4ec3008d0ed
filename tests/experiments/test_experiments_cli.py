"""`python -m experiments` commands that need no running system."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from devstack.paths import REPO
from devstack.targets import worker_target_groups


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "experiments", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_targets_file_format(tmp_path: Path) -> None:
    out = tmp_path / "stack" / "prometheus-targets.json"
    result = run("targets", "--ports", "9100,9101", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert json.loads(out.read_text()) == [
        {"targets": ["127.0.0.1:9100"], "labels": {"worker": "0"}},
        {"targets": ["127.0.0.1:9101"], "labels": {"worker": "1"}},
    ]
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no temp file left behind


def test_duplicate_worker_ports_are_refused() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        worker_target_groups([9100, 9100])


def test_backlog_query_command_prints_the_adapter_query() -> None:
    result = run("backlog-query", "--namespace", "classifier")
    assert result.returncode == 0, result.stderr
    unacked = 'rabbitmq_detailed_queue_messages_unacked{queue="classifier.jobs.default",namespace="classifier"}'
    assert unacked in result.stdout
    result = run("backlog-query", "--queue", "classifier.jobs.lite")
    assert 'rabbitmq_detailed_queue_messages_ready{queue="classifier.jobs.lite"}' in result.stdout


def test_hpa_replay_reads_a_rendered_hpa_and_prints_decisions(tmp_path: Path) -> None:
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "worker"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "worker"},
            "minReplicas": 1,
            "maxReplicas": 6,
            "metrics": [
                {
                    "type": "External",
                    "external": {
                        "metric": {"name": "classifier_queue_backlog"},
                        "target": {"type": "AverageValue", "averageValue": "10"},
                    },
                }
            ],
        },
    }
    other = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}}
    (tmp_path / "render.yaml").write_text(yaml.safe_dump_all([other, hpa]))
    (tmp_path / "samples.csv").write_text("t_s,value\n0,100\n15,100\n30,0\n")
    result = run(
        "hpa-replay", "--hpa", str(tmp_path / "render.yaml"), "--samples", str(tmp_path / "samples.csv"),
        "--start-replicas", "1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    # 1 -> 5 (+4 pods policy) -> 6 (maxReplicas) -> held by the 300 s scale-down window.
    assert [int(r["desired_replicas"]) for r in rows] == [5, 6, 6]
    assert [r["reason"] for r in rows] == ["ScaleUpLimit", "TooManyReplicas", "DesiredWithinRange"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give either --profile (one pool) or --pool two or more times"),
        (("--profile", "step", "--pool", "lite=step", "--pool", "big=steady"), "give either --profile"),
        (("--pool", "lite=step"), "give two or more pools (one pool: --profile)"),
        (("--pool", "lite=step", "--pool", "big=sine"), "unknown profile 'sine'"),
        (("--pool", "lite=step", "--pool", "lite=steady"), "named twice"),
        (("--pool", "lite=step", "--pool", "big=steady", "--base-url", "http://x"), "run locally only"),
    ],
)
def test_run_refuses_bad_pools_before_starting_anything(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    result = run("run", "--out", str(tmp_path / "out"), *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert not (tmp_path / "out").exists()
