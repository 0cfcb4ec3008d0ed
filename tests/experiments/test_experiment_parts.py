"""The experiment runner's parts that need no running system: the compressed clock, the chart's
HPA as the emulator reads it, the derived Prometheus config (checked by the real promtool),
worker targets that keep their ids."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from devstack.targets import worker_target_groups
from experiments import hpa, scaler
from experiments.local_prometheus import ScrapeTargets, derive_config
from experiments.profiles import step
from tests.k8s.chart import one, render
from tests.monitoring.conftest import PromtoolRunner


def test_a_time_scaled_profile_keeps_its_rates_and_shape() -> None:
    profile = step(base=1, high=4, at_s=60, hold_s=300, tail_s=240)
    fast = profile.time_scaled(0.2)
    assert fast.duration_s == pytest.approx(120)
    assert fast.load_onset_s() == pytest.approx(12)
    assert fast.rate(12) == 4 and fast.rate(11.9) == 1 and fast.rate(72) == 1
    assert fast.expected(fast.duration_s) == pytest.approx(profile.expected(profile.duration_s) * 0.2)
    with pytest.raises(ValueError):
        profile.time_scaled(0)


def test_the_emulator_reads_the_chart_hpa_as_helm_renders_it() -> None:
    rendered = hpa.HPASpec.from_manifest(one(render(), "HorizontalPodAutoscaler", "classifier-worker-default"))
    assert hpa.HPASpec.from_manifest(scaler.chart_hpa_manifest()) == rendered
    # Without helm, the same spec from values.yaml.
    fallback = scaler._manifest_from_values(scaler.chart_values()["autoscaling"])
    assert hpa.HPASpec.from_manifest(fallback) == rendered
    changed = hpa.HPASpec.from_manifest(scaler.chart_hpa_manifest(set_values=["autoscaling.maxReplicas=9"]))
    assert changed.max_replicas == 9


def test_time_scaling_compresses_every_time_constant_of_the_chart_hpa() -> None:
    spec = hpa.HPASpec.from_manifest(scaler.chart_hpa_manifest())
    fast = scaler.time_scaled(spec, 0.2)
    assert (fast.min_replicas, fast.max_replicas, fast.target, fast.tolerance) == (
        spec.min_replicas,
        spec.max_replicas,
        spec.target,
        spec.tolerance,
    )
    for direction in ("scale_up", "scale_down"):
        slow_rules, fast_rules = getattr(spec.behavior, direction), getattr(fast.behavior, direction)
        assert fast_rules.stabilization_window_seconds == round(slow_rules.stabilization_window_seconds * 0.2)
        assert [p.period_seconds for p in fast_rules.policies] == [
            max(1, round(p.period_seconds * 0.2)) for p in slow_rules.policies
        ]
        assert [(p.type, p.value) for p in fast_rules.policies] == [(p.type, p.value) for p in slow_rules.policies]
    assert fast.behavior.scale_down.stabilization_window_seconds == 60  # the chart's 300 s


def test_derived_prometheus_config_is_valid_and_points_at_the_stack(
    tmp_path: Path, run_promtool: PromtoolRunner
) -> None:
    workers = tmp_path / "workers.json"
    workers.write_text("[]\n")
    config = derive_config(
        ScrapeTargets(gateway="127.0.0.1:18000", results="127.0.0.1:18001", workers_file=workers, vhost="v1"),
        interval_s=1.0,
    )
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["classifier-gateway"]["static_configs"] == [{"targets": ["127.0.0.1:18000"]}]
    assert jobs["classifier-worker"]["file_sd_configs"][0]["files"] == [str(workers)]
    assert jobs["rabbitmq"]["metrics_path"] == "/metrics/detailed"
    assert jobs["rabbitmq"]["params"] == {"family": ["queue_coarse_metrics", "queue_consumer_count"], "vhost": ["v1"]}
    assert config["global"]["scrape_interval"] == "1000ms"
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    result = run_promtool("check", "config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_worker_targets_keep_their_ids_when_others_stop() -> None:
    groups = worker_target_groups([9101, 9103], worker_ids=[1, 3])
    assert groups == [
        {"targets": ["127.0.0.1:9101"], "labels": {"worker": "1"}},
        {"targets": ["127.0.0.1:9103"], "labels": {"worker": "3"}},
    ]
    with pytest.raises(ValueError):
        worker_target_groups([9101], worker_ids=[1, 2])
