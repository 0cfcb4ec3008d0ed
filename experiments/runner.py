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
from typing import Any

from classifier_common.catalog import SYNTHETIC_MODEL
from classifier_common.config import Settings
from devstack.paths import REPO
from devstack.ports import free_port
from devstack.stack import DEFAULT_BROKER, Stack
from experiments import hpa, load, prom, report, scaler
from experiments.local_prometheus import LocalPrometheus, ScrapeTargets, derive_config
from experiments.pools import PoolLoad, pools_setting
from experiments.profiles import LoadProfile, by_name
from experiments.workers import WorkerPool, WorkerTargets

logger = logging.getLogger(__name__)

DEFAULT_TIME_SCALE = 0.2
DEFAULT_SERVICE_MS = 800
SAMPLE_PERIOD_S = 1.0


@dataclass
class LocalRun:
    out_dir: Path
    profile: str = "step"
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
    # Several pools, each with its own profile, synthetic model, service time, queue, workers and
    # autoscaler (profile, profile_params, model and service_ms above are then unused). Empty: one
    # pool, `default`, the way a single worker Deployment runs.
    pools: Sequence[PoolLoad] = ()


@dataclass
class ClusterRun:
    profile: str
    out_dir: Path
    base_url: str
    prometheus_url: str
    namespace: str = "classifier"
    hpa_name: str = "classifier-worker-default"  # the default pool's HPA
    queue: str = "classifier.jobs.default"  # the default pool's queue
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
        pool: str = report.DEFAULT_POOL,
    ) -> None:
        super().__init__(name=f"sampler-{pool}", daemon=True)
        self.profile, self.clock, self.sources, self.period_s = profile, clock, sources, period_s
        self.pool = pool
        self.rows: list[dict[str, float | str]] = []
        self.last: dict[str, float] = {name: 0.0 for name in sources}
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            t = self.clock()
            row: dict[str, float | str] = {"t_s": round(t, 3), "offered_per_s": self.profile.rate(t), "pool": self.pool}
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
        write_samples(path, [self])


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


@dataclass
class _Pool:
    """One pool of a local run: its load, queue, HPA, workers, autoscaler and sampler."""

    load: PoolLoad
    model: str
    queue: str
    manifest: dict[str, Any]
    chart_spec: hpa.HPASpec
    spec: hpa.HPASpec
    profile: LoadProfile
    workers: WorkerPool | None = None
    autoscaler: scaler.EmulatedHPA | None = None
    sampler: Sampler | None = None
    submissions: list[load.Submission] = field(default_factory=list)


def run_local(run: LocalRun) -> report.RunReport:
    run_id = uuid.uuid4().hex[:8]
    queue_name = f"experiment.{run_id}.jobs"
    work = run.work_dir or REPO / "data" / "experiments" / f"work-{run_id}"
    work.mkdir(parents=True, exist_ok=True)
    run.out_dir.mkdir(parents=True, exist_ok=True)
    several = bool(run.pools)
    loads = list(run.pools) or [PoolLoad(report.DEFAULT_POOL, run.profile, dict(run.profile_params), run.service_ms)]
    settings = Settings(queue_name=queue_name, pools=pools_setting(loads) if several else "")
    pools: list[_Pool] = []
    for pool_load in loads:
        manifest = scaler.chart_hpa_manifest(run.values_files, run.set_values, pool=pool_load.name)
        chart_spec = hpa.HPASpec.from_manifest(manifest)
        pools.append(
            _Pool(
                load=pool_load,
                model=pool_load.model if several else run.model,
                queue=settings.queue_for_pool(pool_load.name),
                manifest=manifest,
                chart_spec=chart_spec,
                spec=scaler.time_scaled(chart_spec, run.time_scale),
                profile=pool_load.load_profile(run.time_scale),
            )
        )
    synthetic = several or run.model == SYNTHETIC_MODEL
    sync_period_s = scaler.SYNC_PERIOD_S * run.time_scale
    duration_s = max(p.profile.duration_s for p in pools)
    settle_s = max(default_settle_s(p.spec) for p in pools) if run.settle_s is None else run.settle_s
    images = gallery_images(run.gallery_dir)
    prefetch = int(scaler.chart_values()["config"]["prefetch"])

    env = {
        "CLASSIFIER_BROKER_URL": run.broker_url,
        "CLASSIFIER_QUEUE_NAME": queue_name,
        "CLASSIFIER_STORE_URL": f"sqlite:///{work}/jobs.db",
        "CLASSIFIER_MODELS_DIR": str(run.models_dir),
        "CLASSIFIER_GALLERY_DIR": str(run.gallery_dir),
        "CLASSIFIER_RESULT_CACHE": "false",  # every job really runs
        "CLASSIFIER_PREFETCH": str(prefetch),
        "CLASSIFIER_LOG_FORMAT": "json",
    }
    if not several:
        env["CLASSIFIER_MODELS"] = run.model
    if synthetic:  # the gateway knows the synthetic models; each pool's workers get their own time
        env["CLASSIFIER_SYNTHETIC_SERVICE_MS"] = str(loads[0].service_ms)
    stack = Stack(
        workers=0,
        port=free_port(),
        gateway_port=free_port(),
        results_port=free_port(),
        worker_port=free_port(),
        state_dir=work / "stack",
        nginx=True,
        env=env,
        pools=pools_setting(loads) if several else "",
    )
    targets = WorkerTargets(work / "worker-targets.json", stack.worker_port_of)
    server = LocalPrometheus(
        derive_config(
            ScrapeTargets(
                gateway=f"127.0.0.1:{stack.gateway_port}",
                results=f"127.0.0.1:{stack.results_port}",
                workers_file=targets.path,
                rabbitmq=run.rabbitmq_metrics,
                vhost=urllib.parse.unquote(urllib.parse.urlparse(run.broker_url).path.lstrip("/")) or "/",
            ),
            interval_s=1.0,
        ),
        work / "prometheus",
        free_port(),
    )
    client: prom.PrometheusClient | None = None
    try:
        stack.up(timeout=180)
        for pool in pools:
            worker_env = {"CLASSIFIER_POOL": pool.load.name} if several else {}
            if synthetic:
                worker_env["CLASSIFIER_SYNTHETIC_SERVICE_MS"] = str(pool.load.service_ms)
            pool.workers = WorkerPool(stack, targets, pool=pool.load.name, env=worker_env)
            pool.workers.scale_to(max(pool.spec.min_replicas, 1))
        stack.wait_ready(180, names=[n for p in pools if p.workers for n in p.workers.worker_names])
        server.start()
        client = prom.PrometheusClient(server.url)
        backlog = {p.load.name: prom.backlog_query(p.queue) for p in pools}
        completed = {p.load.name: prom.completed_rate_query(models=[p.model] if several else None) for p in pools}
        for pool in pools:
            query = backlog[pool.load.name]
            _wait_for(lambda q=query: client.value(q) is not None, 60, f"queue {pool.queue}'s metrics in Prometheus")

        started = time.monotonic()
        wall_start = time.time()

        def clock() -> float:
            return time.monotonic() - started

        for pool in pools:
            assert pool.workers is not None
            name, workers = pool.load.name, pool.workers
            pool.autoscaler = scaler.EmulatedHPA(
                pool.spec,
                workers,
                lambda q=backlog[name]: client.value(q),
                sync_period_s=sync_period_s,
                clock=clock,
                name=f"emulated-hpa-{name}",
            )
            autoscaler = pool.autoscaler
            pool.sampler = Sampler(
                pool.profile,
                clock,
                {
                    "backlog": lambda q=backlog[name]: client.value(q),
                    "replicas_desired": lambda a=autoscaler: a.desired,
                    "replicas_ready": workers.ready_count,
                    "completed_per_s": lambda q=completed[name]: client.value(q),
                },
                pool=name,
            )
        for pool in pools:
            assert pool.sampler is not None and pool.autoscaler is not None
            pool.sampler.start()
            pool.autoscaler.start()
        for pool in pools:
            logger.info(
                "pool %s: load %s, %.0f jobs over %.0f s",
                pool.load.name,
                pool.profile.name,
                pool.profile.expected(pool.profile.duration_s),
                pool.profile.duration_s,
            )
        base_url = stack.base_url

        async def submit_all() -> list[list[load.Submission]]:
            return list(
                await asyncio.gather(
                    *(
                        load.submit_profile(base_url, p.profile, model=p.model, images=images, start=started)
                        for p in pools
                    )
                )
            )

        for pool, submissions in zip(pools, asyncio.run(submit_all()), strict=True):
            pool.submissions = submissions
        # Settle: every backlog drains and every autoscaler brings its pool back to its minimum.
        while clock() < duration_s + max(settle_s, run.drain_timeout_s):
            drained = all((client.value(backlog[p.load.name]) or 0) == 0 for p in pools)
            if drained and clock() >= duration_s + settle_s:
                break
            at_min = all(p.workers is not None and p.workers.replicas <= p.spec.min_replicas for p in pools)
            if drained and at_min and clock() >= duration_s + 5:
                break
            for pool in pools:
                if pool.autoscaler is not None and pool.autoscaler.error is not None:
                    raise RuntimeError(f"the emulated HPA of pool {pool.load.name} failed") from pool.autoscaler.error
            time.sleep(1)
        for pool in pools:
            assert pool.autoscaler is not None
            pool.autoscaler.stop()
        for pool in pools:
            assert pool.workers is not None
            pool.workers.wait_terminated()  # the last scale-down drains; the plots show where it ended
        time.sleep(2 * SAMPLE_PERIOD_S)
        for pool in pools:
            assert pool.sampler is not None
            pool.sampler.stop()

        async def collect_all() -> list[list[report.JobRecord]]:
            return list(
                await asyncio.gather(
                    *(
                        load.collect_outcomes(
                            base_url, p.submissions, wall_start=wall_start, timeout_s=60, pool=p.load.name
                        )
                        for p in pools
                    )
                )
            )

        records = [r for pool_records in asyncio.run(collect_all()) for r in pool_records]
        crashed = {p.load.name: p.workers.crashed() for p in pools if p.workers is not None}
        scaled_down = {p.load.name: list(p.workers.stopped) for p in pools if p.workers is not None}
        for pool in pools:
            assert pool.workers is not None
            pool.workers.stop_all()

        write_samples(run.out_dir / "samples.csv", [p.sampler for p in pools if p.sampler is not None])
        load.write_jobs_csv(run.out_dir / "jobs.csv", records)
        _write_scaling(
            run.out_dir / "scaling.csv",
            [(p.load.name, e) for p in pools if p.autoscaler is not None for e in p.autoscaler.events],
        )
        broker = urllib.parse.urlparse(run.broker_url)
        if several:
            command = f"python -m experiments run --time-scale {run.time_scale:g}" + "".join(
                f" --pool {p.load.spec}" for p in pools
            )
        else:
            command = f"python -m experiments run --profile {run.profile} --time-scale {run.time_scale:g}"
            command += "".join(f" --param {k}={v:g}" for k, v in run.profile_params.items())
            command += f" --service-ms {run.service_ms}" if synthetic else f" --model {run.model}"
        notes = [f"Local run: `{command}` on {os.cpu_count()} CPU cores."]
        for pool in pools:
            notes += _pool_notes(pool, several=several, synthetic=synthetic, prefetch=prefetch, run=run)
            stopped = scaled_down[pool.load.name]
            notes.append(
                f"{_pool_prefix(pool, several)}scale-downs by the autoscaler: {len(stopped)} workers got "
                f"SIGTERM; exit codes {sorted({s.exit_code for s in stopped}) or 'none'} (0: drained, i.e. "
                "finished the job in hand, acked it and exited); longest drain "
                f"{max((s.drain_s for s in stopped), default=0):.1f} s."
            )
        notes += [
            f"Every autoscaler: the HPA v2 emulator, sync every {sync_period_s:g} s (every time constant "
            f"x{run.time_scale}); its metric is its own pool's queue backlog."
            if several
            else f"Autoscaler: the HPA v2 emulator, sync every {sync_period_s:g} s.",
            "Backlog: the prometheus-adapter query (ready + unacked) from a local Prometheus scraping every 1 s; "
            f"RabbitMQ at {broker.hostname}:{broker.port or 5672} "
            "refreshes its queue metrics every 5 s (collect_statistics_interval), hence the steps.",
        ]
        for name, indexes in crashed.items():
            if indexes:
                notes.append(
                    f"**Workers of pool {name} that exited without being stopped: {indexes}** (see {work}/stack/*.log)."
                )
        broker_down_s = _seconds_down(client, "rabbitmq", clock())
        if broker_down_s:
            notes.append(
                f"**RabbitMQ was unreachable for about {broker_down_s:.0f} s during the run** (failed scrapes of "
                "its metrics endpoint): the broker restarted or stopped; workers reconnected, the gateway "
                "answered 503 meanwhile (counted as rejected), and the backlog curve is flat over the gap."
            )
        tolerance = pools[0].spec.tolerance
        (run.out_dir / "run.json").write_text(
            json.dumps(
                {
                    "mode": "local",
                    "time_scale": run.time_scale,
                    "sync_period_s": sync_period_s,
                    "tolerance": tolerance,
                    "pools": {
                        p.load.name: {
                            "profile": p.profile.name,
                            "profile_params": p.load.params,
                            "profile_points": p.profile.points,
                            "model": p.model,
                            "service_ms": p.load.service_ms if synthetic else None,
                            "queue": p.queue,
                            "hpa": p.manifest["spec"],
                            "target_per_worker": p.chart_spec.target.value,
                            "workers_stopped": [asdict(s) for s in scaled_down[p.load.name]],
                        }
                        for p in pools
                    },
                },
                indent=2,
            )
            + "\n"
        )
        title = (
            "Scaling experiment: " + ", ".join(f"pool {p.load.name} {p.profile.name}" for p in pools)
            if several
            else f"Scaling experiment: {pools[0].profile.name}"
        )
        return report.write_report(
            run.out_dir,
            title=f"{title} (local, HPA emulator)",
            targets={p.load.name: p.chart_spec.target.value for p in pools},
            tolerance=tolerance,
            notes=notes,
        )
    finally:
        for pool in pools:
            if pool.workers is not None:
                pool.workers.stop_all()
        stack.down()
        server.stop()
        if client is not None:
            client.close()
        try:
            stack.delete_queues()
        except Exception as exc:  # noqa: BLE001 - the run's result stands; a leftover queue is only untidy
            logger.warning("could not delete the queues of %s: %s", queue_name, exc)
        if run.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)


def _pool_prefix(pool: _Pool, several: bool) -> str:
    return f"Pool `{pool.load.name}`: " if several else ""


def _pool_notes(pool: _Pool, *, several: bool, synthetic: bool, prefetch: int, run: LocalRun) -> list[str]:
    spec, chart = pool.spec, pool.chart_spec
    params = f" with {json.dumps(pool.load.params)}" if pool.load.params else ""
    service_ms = pool.load.service_ms
    model = (
        f"model `{pool.model}` (synthetic: {service_ms} ms per job, no network; one worker serves "
        f"{1000 / service_ms:.2f} jobs/s)"
        if synthetic
        else f"model `{pool.model}`"
    )
    return [
        f"{_pool_prefix(pool, several)}load profile `{pool.profile.name}` compressed x{run.time_scale} "
        f"({pool.profile.duration_s:g} s){params}, "
        f"{pool.profile.expected(pool.profile.duration_s):.0f} jobs; queue `{pool.queue}`; workers: "
        f"`python -m classifier_worker` processes, {model}, prefetch {prefetch} (the chart's config.prefetch), "
        "result cache off.",
        f"{_pool_prefix(pool, several)}HPA from the chart (min {chart.min_replicas}, max {chart.max_replicas}, "
        f"target {chart.target.value:g} jobs per worker), time constants x{run.time_scale}: scale-up window "
        f"{spec.behavior.scale_up.stabilization_window_seconds} s, scale-down window "
        f"{spec.behavior.scale_down.stabilization_window_seconds} s, policies "
        f"{_policies(spec.behavior.scale_up)} up / {_policies(spec.behavior.scale_down)} down.",
    ]


def write_samples(path: Path, samplers: Sequence[Sampler]) -> None:
    """Every sampler's rows (one sampler per pool) in one samples.csv, in time order."""
    rows = sorted((row for s in samplers for row in s.rows), key=lambda r: (r["t_s"], str(r["pool"])))
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(report.SAMPLE_COLUMNS))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row[k] for k in report.SAMPLE_COLUMNS})


def run_cluster(run: ClusterRun) -> report.RunReport:
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


def _write_scaling(path: Path, events: Sequence[tuple[str, scaler.ScalingEvent]]) -> None:
    """scaling.csv: every (pool, autoscaler decision), in time order."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["t_s", "pool", "metric", "current", "proposal", "desired", "reason"])
        for pool, e in sorted(events, key=lambda pe: pe[1].t_s):
            metric = "" if e.metric is None else f"{e.metric:g}"
            proposal = "" if e.proposal is None else e.proposal
            writer.writerow([f"{e.t_s:.3f}", pool, metric, e.current, proposal, e.desired, e.reason])
