"""One scaling experiment, end to end: load in, measurements out, a report folder written.

Two ways to run, the same load and the same report:

- **local** (no cluster; the default): a multi-process stack (devstack/stack.py: nginx, gateway,
  results, workers) on the machine's RabbitMQ with its own queue, a local Prometheus scraping
  it, and the HPA emulator resizing the worker pool by the chart's autoscaling values. The
  profile and the HPA's time constants are compressed by ``time_scale`` (default 0.2: the
  controller syncs every 3 s instead of 15 s, a 300 s stabilisation window lasts 60 s); rates,
  the model's service time, worker start-up and the scrape interval are not. By default the
  workers run the synthetic model (:mod:`classifier_worker.synthetic`) with a fixed service
  time, so that the run measures the autoscaler rather than this machine's CPU count.
- **cluster**: the load goes to ``base_url`` (the kind ingress); backlog and throughput come
  from the cluster's Prometheus (port-forwarded), replicas from the real HPA (kubectl).

The run folder gets samples.csv, jobs.csv, scaling.csv (every autoscaler decision), the plots
and summary.md (:mod:`experiments.report`).
"""

from __future__ import annotations

import asyncio
import csv
import json
import logging
import math
import os
import shutil
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from classifier_common.catalog import SYNTHETIC_MODEL
from classifier_common.config import Settings
from devstack.paths import REPO
from devstack.ports import free_port
from devstack.stack import DEFAULT_BROKER, Stack
from experiments import hpa, load, prom, report, scaler
from experiments.local_prometheus import LocalPrometheus, ScrapeTargets, derive_config
from experiments.profiles import LoadProfile, by_name
from experiments.workers import WorkerPool

logger = logging.getLogger(__name__)

DEFAULT_TIME_SCALE = 0.2
DEFAULT_SERVICE_MS = 800
SAMPLE_PERIOD_S = 1.0


@dataclass
class LocalRun:
    profile: str
    out_dir: Path
    time_scale: float = DEFAULT_TIME_SCALE
    profile_params: dict[str, float] = field(default_factory=dict)  # unscaled seconds, rates per s
    model: str = SYNTHETIC_MODEL
    service_ms: int = DEFAULT_SERVICE_MS
    values_files: Sequence[Path] = ()
    set_values: Sequence[str] = ()
    settle_s: float | None = None  # after the profile; default: long enough to scale back down
    drain_timeout_s: float = 180.0
    broker_url: str = DEFAULT_BROKER
    rabbitmq_metrics: str = "127.0.0.1:15692"  # host:port of its rabbitmq_prometheus endpoint
    models_dir: Path = REPO / "data" / "models"
    gallery_dir: Path = REPO / "data" / "gallery"
    work_dir: Path | None = None  # logs, store, Prometheus data; default data/experiments/work-<id>


@dataclass
class ClusterRun:
    profile: str
    out_dir: Path
    base_url: str
    prometheus_url: str
    namespace: str = "classifier"
    hpa_name: str = "classifier-worker"
    queue: str = "classifier.jobs"
    model: str = "efficientnet_lite0"
    time_scale: float = 1.0
    profile_params: dict[str, float] = field(default_factory=dict)
    settle_s: float = 300.0
    drain_timeout_s: float = 600.0
    images: Sequence[str] = ()


class Sampler(threading.Thread):
    """Every period: one samples.csv row from the given sources (each may fail: the row keeps the
    last value it had, so a missed scrape is a flat step rather than a hole)."""

    def __init__(
        self,
        profile: LoadProfile,
        clock: Callable[[], float],
        sources: dict[str, Callable[[], float | None]],
        period_s: float = SAMPLE_PERIOD_S,
    ) -> None:
        super().__init__(name="sampler", daemon=True)
        self.profile, self.clock, self.sources, self.period_s = profile, clock, sources, period_s
        self.rows: list[dict[str, float]] = []
        self.last: dict[str, float] = {name: 0.0 for name in sources}
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            t = self.clock()
            row = {"t_s": round(t, 3), "offered_per_s": self.profile.rate(t)}
            for name, source in self.sources.items():
                try:
                    value = source()
                except Exception as exc:
                    logger.debug("sample %s failed: %s", name, exc)
                    value = None
                if value is not None and not math.isnan(value):
                    self.last[name] = value
                row[name] = self.last[name]
            self.rows.append(row)
            self._stop_event.wait(max(0.0, self.period_s - (self.clock() - t)))

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=30)

    def write(self, path: Path) -> None:
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(report.SAMPLE_COLUMNS))
            writer.writeheader()
            for row in self.rows:
                writer.writerow({k: row[k] for k in report.SAMPLE_COLUMNS})


def default_broker_url() -> str:
    """CLASSIFIER_BROKER_URL when it names a RabbitMQ, else the local one (as make stack does)."""
    configured = Settings().broker_url
    return configured if configured.startswith("amqp") else DEFAULT_BROKER


def gallery_images(gallery_dir: Path) -> list[str]:
    images = sorted(p.name for p in gallery_dir.iterdir() if p.suffix.lower() in {".jpeg", ".jpg", ".png"})
    if not images:
        raise RuntimeError(f"no images in {gallery_dir}: run make setup")
    return images


def default_settle_s(spec: hpa.HPASpec) -> float:
    """Long enough after the load for the (scaled) scale-down window to pass and the policies to
    bring the pool from max back to min."""
    down = spec.behavior.scale_down
    period = max((p.period_seconds for p in down.policies), default=15)
    return down.stabilization_window_seconds + (spec.max_replicas - spec.min_replicas) * period + 10


def run_local(run: LocalRun) -> report.Summary:
    run_id = uuid.uuid4().hex[:8]
    queue = f"experiment.{run_id}.jobs"
    work = run.work_dir or REPO / "data" / "experiments" / f"work-{run_id}"
    work.mkdir(parents=True, exist_ok=True)
    run.out_dir.mkdir(parents=True, exist_ok=True)

    manifest = scaler.chart_hpa_manifest(run.values_files, run.set_values)
    chart_spec = hpa.HPASpec.from_manifest(manifest)
    spec = scaler.time_scaled(chart_spec, run.time_scale)
    sync_period_s = scaler.SYNC_PERIOD_S * run.time_scale
    profile = by_name(run.profile, **run.profile_params).time_scaled(run.time_scale)
    settle_s = default_settle_s(spec) if run.settle_s is None else run.settle_s
    images = gallery_images(run.gallery_dir)
    prefetch = int(scaler.chart_values()["config"]["prefetch"])

    stack = Stack(
        workers=max(spec.min_replicas, 1),
        port=free_port(),
        gateway_port=free_port(),
        results_port=free_port(),
        worker_port=free_port(),
        state_dir=work / "stack",
        nginx=True,
        env={
            "CLASSIFIER_BROKER_URL": run.broker_url,
            "CLASSIFIER_QUEUE_NAME": queue,
            "CLASSIFIER_STORE_URL": f"sqlite:///{work}/jobs.db",
            "CLASSIFIER_MODELS_DIR": str(run.models_dir),
            "CLASSIFIER_GALLERY_DIR": str(run.gallery_dir),
            "CLASSIFIER_MODELS": run.model,
            "CLASSIFIER_RESULT_CACHE": "false",  # every job really runs
            "CLASSIFIER_PREFETCH": str(prefetch),
            "CLASSIFIER_LOG_FORMAT": "json",
            **({"CLASSIFIER_SYNTHETIC_SERVICE_MS": str(run.service_ms)} if run.model == SYNTHETIC_MODEL else {}),
        },
    )
    targets_file = work / "worker-targets.json"
    server = LocalPrometheus(
        derive_config(
            ScrapeTargets(
                gateway=f"127.0.0.1:{stack.gateway_port}",
                results=f"127.0.0.1:{stack.results_port}",
                workers_file=targets_file,
                rabbitmq=run.rabbitmq_metrics,
                vhost=urllib.parse.unquote(urllib.parse.urlparse(run.broker_url).path.lstrip("/")) or "/",
            ),
            interval_s=1.0,
        ),
        work / "prometheus",
        free_port(),
    )
    pool: WorkerPool | None = None
    client: prom.PrometheusClient | None = None
    try:
        stack.up(timeout=180)
        pool = WorkerPool(stack, targets_file)
        server.start()
        client = prom.PrometheusClient(server.url)
        backlog_query = prom.backlog_query(queue)
        completed_query = prom.completed_rate_query()
        _wait_for(lambda: client.value(backlog_query) is not None, 60, "the queue's metrics in Prometheus")

        started = time.monotonic()
        wall_start = time.time()

        def clock() -> float:
            return time.monotonic() - started

        autoscaler = scaler.EmulatedHPA(
            spec, pool, lambda: client.value(backlog_query), sync_period_s=sync_period_s, clock=clock
        )
        sampler = Sampler(
            profile,
            clock,
            {
                "backlog": lambda: client.value(backlog_query),
                "replicas_desired": lambda: autoscaler.desired,
                "replicas_ready": lambda: pool.ready_count(),
                "completed_per_s": lambda: client.value(completed_query),
            },
        )
        sampler.start()
        autoscaler.start()
        logger.info(
            "load %s: %.0f jobs over %.0f s", profile.name, profile.expected(profile.duration_s), profile.duration_s
        )
        submissions = asyncio.run(
            load.submit_profile(stack.base_url, profile, model=run.model, images=images, start=started)
        )
        # Settle: the backlog drains and the autoscaler brings the pool back to its minimum.
        end = profile.duration_s
        while clock() < end + max(settle_s, run.drain_timeout_s):
            drained = (client.value(backlog_query) or 0) == 0
            if drained and clock() >= end + settle_s:
                break
            if drained and pool.replicas <= spec.min_replicas and clock() >= end + 5:
                break
            if autoscaler.error is not None:
                raise RuntimeError("the emulated HPA failed") from autoscaler.error
            time.sleep(1)
        autoscaler.stop()
        pool.wait_terminated()  # the last scale-down drains; the plots show where it ended
        time.sleep(2 * SAMPLE_PERIOD_S)
        sampler.stop()
        records = asyncio.run(load.collect_outcomes(stack.base_url, submissions, wall_start=wall_start, timeout_s=60))
        crashed = pool.crashed()
        scaled_down = list(pool.stopped)  # by the autoscaler; stop_all() below is the teardown
        pool.stop_all()

        sampler.write(run.out_dir / "samples.csv")
        load.write_jobs_csv(run.out_dir / "jobs.csv", records)
        _write_scaling(run.out_dir / "scaling.csv", autoscaler.events)
        broker = urllib.parse.urlparse(run.broker_url)
        command = f"python -m experiments run --profile {run.profile} --time-scale {run.time_scale:g}"
        command += "".join(f" --param {k}={v:g}" for k, v in run.profile_params.items())
        command += f" --service-ms {run.service_ms}" if run.model == SYNTHETIC_MODEL else f" --model {run.model}"
        notes = [
            f"Local run: `{command}` on {os.cpu_count()} CPU cores.",
            f"Workers: `python -m classifier_worker` processes, model `{run.model}`"
            + (
                f" (synthetic: {run.service_ms} ms per job, no network; one worker serves "
                f"{1000 / run.service_ms:.2f} jobs/s)"
                if run.model == SYNTHETIC_MODEL
                else ""
            )
            + f", prefetch {prefetch} (the chart's config.prefetch), result cache off.",
            f"Autoscaler: the HPA v2 emulator with the chart's worker HPA (min {chart_spec.min_replicas}, "
            f"max {chart_spec.max_replicas}, target {chart_spec.target.value:g} jobs per worker), every time "
            f"constant x{run.time_scale}: sync every {sync_period_s:g} s, scale-up window "
            f"{spec.behavior.scale_up.stabilization_window_seconds} s, scale-down window "
            f"{spec.behavior.scale_down.stabilization_window_seconds} s, policies "
            f"{_policies(spec.behavior.scale_up)} up / {_policies(spec.behavior.scale_down)} down.",
            f"Load profile `{run.profile}` compressed x{run.time_scale} ({profile.duration_s:g} s); rates as "
            f"in experiments/profiles.py{' with ' + json.dumps(run.profile_params) if run.profile_params else ''}.",
            "Backlog: the prometheus-adapter query (ready + unacked) from a local Prometheus scraping every 1 s; "
            f"RabbitMQ at {broker.hostname}:{broker.port or 5672} "
            "refreshes its queue metrics every 5 s (collect_statistics_interval), hence the steps.",
            f"Scale-downs by the autoscaler: {len(scaled_down)} workers got SIGTERM; exit codes "
            f"{sorted({s.exit_code for s in scaled_down}) or 'none'} (0: drained, i.e. finished the job in hand, "
            f"acked it and exited); longest drain {max((s.drain_s for s in scaled_down), default=0):.1f} s.",
        ]
        if crashed:
            notes.append(f"**Workers that exited without being stopped: {crashed}** (see {work}/stack/*.log).")
        broker_down_s = _seconds_down(client, "rabbitmq", clock())
        if broker_down_s:
            notes.append(
                f"**RabbitMQ was unreachable for about {broker_down_s:.0f} s during the run** (failed scrapes of "
                "its metrics endpoint): the broker restarted or stopped; workers reconnected, the gateway "
                "answered 503 meanwhile (counted as rejected), and the backlog curve is flat over the gap."
            )
        (run.out_dir / "run.json").write_text(
            json.dumps(
                {
                    "mode": "local",
                    "profile": profile.name,
                    "profile_points": profile.points,
                    "time_scale": run.time_scale,
                    "model": run.model,
                    "service_ms": run.service_ms if run.model == SYNTHETIC_MODEL else None,
                    "hpa": manifest["spec"],
                    "sync_period_s": sync_period_s,
                    "workers_stopped": [asdict(s) for s in scaled_down],
                },
                indent=2,
            )
            + "\n"
        )
        return report.write_report(
            run.out_dir,
            title=f"Scaling experiment: {profile.name} (local, HPA emulator)",
            target_per_replica=chart_spec.target.value,
            notes=notes,
        )
    finally:
        if pool is not None:
            pool.stop_all()
        stack.down()
        server.stop()
        if client is not None:
            client.close()
        try:
            stack.delete_queues()
        except Exception as exc:  # noqa: BLE001 - the run's result stands; a leftover queue is only untidy
            logger.warning("could not delete %s: %s", queue, exc)
        if run.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)


def run_cluster(run: ClusterRun) -> report.Summary:
    """Against a deployed release: the real HPA scales; nothing here starts or stops anything."""
    run.out_dir.mkdir(parents=True, exist_ok=True)
    profile = by_name(run.profile, **run.profile_params).time_scaled(run.time_scale)
    client = prom.PrometheusClient(run.prometheus_url)
    backlog_query = prom.backlog_query(run.queue, namespace=run.namespace)
    completed_query = prom.completed_rate_query(namespace=run.namespace)
    hpa_reader = scaler.KubernetesHPA(run.namespace, run.hpa_name)
    target = hpa.HPASpec.from_manifest(hpa_reader.spec()).target.value
    images = list(run.images) or ["n01440764_tench.JPEG"]
    latest: dict[str, float] = {"desired": 0, "ready": 0}

    def read_replicas() -> None:
        latest["desired"], latest["ready"] = hpa_reader.replicas()

    started = time.monotonic()
    wall_start = time.time()

    def clock() -> float:
        return time.monotonic() - started

    def desired() -> float:
        read_replicas()
        return latest["desired"]

    sampler = Sampler(
        profile,
        clock,
        {
            "backlog": lambda: client.value(backlog_query),
            "replicas_desired": desired,
            "replicas_ready": lambda: latest["ready"],
            "completed_per_s": lambda: client.value(completed_query),
        },
        period_s=2.0,
    )
    sampler.start()
    submissions = asyncio.run(load.submit_profile(run.base_url, profile, model=run.model, images=images, start=started))
    end = profile.duration_s
    while clock() < end + run.drain_timeout_s:
        if (client.value(backlog_query) or 0) == 0 and clock() >= end + run.settle_s:
            break
        time.sleep(2)
    sampler.stop()
    records = asyncio.run(load.collect_outcomes(run.base_url, submissions, wall_start=wall_start, timeout_s=120))
    sampler.write(run.out_dir / "samples.csv")
    load.write_jobs_csv(run.out_dir / "jobs.csv", records)
    client.close()
    return report.write_report(
        run.out_dir,
        title=f"Scaling experiment: {profile.name} (cluster, namespace {run.namespace})",
        target_per_replica=target,
        notes=[f"Against {run.base_url}; backlog and throughput from {run.prometheus_url}; replicas from HPA "
               f"{run.hpa_name} (kubectl)."],
    )  # fmt: skip


def _seconds_down(client: prom.PrometheusClient, job: str, duration_s: float) -> float:
    """Seconds over the last ``duration_s`` in which Prometheus failed to scrape ``job``."""
    window = f"{max(1, round(duration_s))}s"
    down = client.value(f'sum_over_time((up{{job="{job}"}} == bool 0)[{window}:1s])')
    return down or 0.0


def _wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.5)


def _policies(rules: hpa.ScalingRules) -> str:
    return ", ".join(f"{p.value}{'%' if p.type == 'Percent' else ' pods'}/{p.period_seconds} s" for p in rules.policies)


def _write_scaling(path: Path, events: Sequence[scaler.ScalingEvent]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["t_s", "metric", "current", "proposal", "desired", "reason"])
        for e in events:
            metric = "" if e.metric is None else f"{e.metric:g}"
            proposal = "" if e.proposal is None else e.proposal
            writer.writerow([f"{e.t_s:.3f}", metric, e.current, proposal, e.desired, e.reason])
