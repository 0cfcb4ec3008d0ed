"""The experiment runner's parts that need no running system: the compressed clock, the chart's
HPA as the emulator reads it (one per pool), the derived Prometheus config (checked by the real
promtool), worker targets that keep their ids and that several pools share, per-pool queries and
the per-pool samples and scaling files."""

from __future__ import annotations

import copy
import csv
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack.targets import worker_target_groups
from experiments import hpa, prom, runner, scaler
from experiments.local_prometheus import ScrapeTargets, derive_config
from experiments.profiles import steady, step
from experiments.report import SAMPLE_COLUMNS, read_samples
from experiments.workers import WorkerTargets
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


def pool_hpa_manifest(pool: str | None, max_replicas: int) -> dict[str, Any]:
    manifest = copy.deepcopy(scaler.chart_hpa_manifest())
    manifest["spec"]["maxReplicas"] = max_replicas
    if pool is not None:
        manifest["metadata"]["name"] = f"classifier-worker-{pool}"
        manifest["metadata"]["labels"][scaler.POOL_LABEL] = pool
    return manifest


def test_each_pool_gets_its_own_hpa_when_the_chart_renders_one_per_pool() -> None:
    service = {"kind": "Service", "metadata": {"name": "x"}}
    per_pool = [service, pool_hpa_manifest("lite", 6), pool_hpa_manifest("big", 2)]
    assert scaler.pool_hpa(per_pool, "big")["spec"]["maxReplicas"] == 2
    assert scaler.pool_hpa(per_pool, "lite")["spec"]["maxReplicas"] == 6
    with pytest.raises(LookupError, match=r"no worker HPA of pool 'gpu'.*\['big', 'lite'\]"):
        scaler.pool_hpa(per_pool, "gpu")
    with pytest.raises(LookupError, match="name the pool"):
        scaler.pool_hpa(per_pool, None)
    # A chart with one worker HPA (no pool label) scales every pool by the same values.
    single = [pool_hpa_manifest(None, 4)]
    assert scaler.pool_hpa(single, "lite") is scaler.pool_hpa(single, "big") is single[0]
    assert hpa.HPASpec.from_manifest(scaler.chart_hpa_manifest(pool="lite")).max_replicas == 4


def test_pools_share_one_targets_file_with_unique_worker_indexes(tmp_path: Path) -> None:
    targets = WorkerTargets(tmp_path / "workers.json", port_of=lambda i: 19000 + i)
    lite = [targets.claim("lite"), targets.claim("lite")]
    big = targets.claim("big")
    assert (lite, big) == ([0, 1], 2)
    targets.set_pool("lite", {1})  # worker 0 of lite exited
    targets.set_pool("big", {2})
    assert targets.claim("big") == 0  # its index is free again
    targets.set_pool("big", {0, 2})
    groups = json.loads(targets.path.read_text())
    assert [(g["targets"], g["labels"]["worker"]) for g in groups] == [
        (["127.0.0.1:19000"], "0"),
        (["127.0.0.1:19001"], "1"),
        (["127.0.0.1:19002"], "2"),
    ]


def test_a_pools_throughput_counts_only_its_models() -> None:
    assert prom.completed_rate_query() == 'sum(rate(classifier_jobs_processed_total{outcome=~"succeeded|failed"}[10s]))'
    query = prom.completed_rate_query(models=["synthetic_sleep_lite", "synthetic_sleep_big-gpu"])
    assert 'model=~"synthetic_sleep_lite|synthetic_sleep_big\\-gpu"' in query
    assert prom.backlog_query("exp.jobs.lite").count('queue="exp.jobs.lite"') == 2  # ready + unacked


def test_every_pools_samples_go_to_one_file_in_time_order(tmp_path: Path) -> None:
    def sampler(pool: str, times: list[float], backlog: float) -> runner.Sampler:
        s = runner.Sampler(steady(rate=0.5, duration_s=10), lambda: 0.0, {}, pool=pool)
        s.rows = [
            {"t_s": t, "offered_per_s": 0.5, "pool": pool, "backlog": backlog, "replicas_desired": 1,
             "replicas_ready": 1, "completed_per_s": 0.5}
            for t in times
        ]  # fmt: skip
        return s

    runner.write_samples(tmp_path / "samples.csv", [sampler("lite", [0.0, 1.0], 7), sampler("big", [0.5, 1.5], 0)])
    with (tmp_path / "samples.csv").open() as handle:
        assert tuple(csv.DictReader(handle).fieldnames or ()) == SAMPLE_COLUMNS
    samples = read_samples(tmp_path / "samples.csv")
    assert [(s.t_s, s.pool, s.backlog) for s in samples] == [
        (0.0, "lite", 7),
        (0.5, "big", 0),
        (1.0, "lite", 7),
        (1.5, "big", 0),
    ]


def test_scaling_rows_name_their_pool(tmp_path: Path) -> None:
    events = [
        ("big", scaler.ScalingEvent(3.0, 0.0, 1, 1, 1, "DesiredWithinRange")),
        ("lite", scaler.ScalingEvent(2.9, 12.0, 1, 3, 3, "ScaleUpLimit")),
        ("lite", scaler.ScalingEvent(5.9, None, 3, None, 3, "FailedGetExternalMetric")),
    ]
    runner._write_scaling(tmp_path / "scaling.csv", events)
    with (tmp_path / "scaling.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["t_s"], r["pool"], r["metric"], r["desired"], r["reason"]) for r in rows] == [
        ("2.900", "lite", "12", "3", "ScaleUpLimit"),
        ("3.000", "big", "0", "1", "DesiredWithinRange"),
        ("5.900", "lite", "", "3", "FailedGetExternalMetric"),
    ]
