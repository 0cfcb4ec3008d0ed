"""Turn an experiment's recorded data into a report folder: PNG plots and a markdown summary.

An experiment run folder holds two CSV files (written by the runner):

``samples.csv`` -- one row per sampling instant and pool:
    t_s               seconds since the run started
    offered_per_s     submissions per second the load profile asked for at t_s
    backlog           messages ready + unacked in the jobs queue (the HPA's metric)
    replicas_desired  replica count the autoscaler (HPA or emulator) wanted
    replicas_ready    workers ready and consuming
    completed_per_s   jobs finishing per second (succeeded or failed)
    pool              the worker pool the row is about (its own queue, workers and autoscaler)

``jobs.csv`` -- one row per submission:
    job_id, submitted_s, http_status (202 = accepted), finished_s (empty if never),
    status (the job's last known status: succeeded, failed, queued, running, or missing
    when its id answered 404), pool (the pool serving the job's model)

The ``pool`` column may be absent (a run of one pool): every row is then pool ``default``.
A run of several pools is reported pool by pool, with a verdict on whether each pool scaled on
its own backlog (:func:`judge`).

Everything here is a pure function of those rows except :func:`write_report`, which reads
the CSVs and writes ``summary.md`` and the plots next to them.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

logger = logging.getLogger(__name__)

SAMPLE_COLUMNS = (
    "t_s",
    "offered_per_s",
    "backlog",
    "replicas_desired",
    "replicas_ready",
    "completed_per_s",
    "pool",
)
JOB_COLUMNS = ("job_id", "submitted_s", "http_status", "finished_s", "status", "pool")
OPTIONAL_COLUMNS = frozenset({"pool"})  # absent in a run of one pool
DEFAULT_POOL = "default"
TERMINAL = frozenset({"succeeded", "failed"})
PLOTS = ("backlog.png", "replicas.png", "throughput.png", "latency.png")


@dataclass(frozen=True)
class Sample:
    t_s: float
    offered_per_s: float
    backlog: float
    replicas_desired: int
    replicas_ready: int
    completed_per_s: float
    pool: str = DEFAULT_POOL


@dataclass(frozen=True)
class JobRecord:
    job_id: str
    submitted_s: float
    http_status: int
    finished_s: float | None
    status: str
    pool: str = DEFAULT_POOL

    @property
    def accepted(self) -> bool:
        return self.http_status == 202

    @property
    def latency_s(self) -> float | None:
        if self.finished_s is None or self.status not in TERMINAL:
            return None
        return self.finished_s - self.submitted_s


@dataclass(frozen=True)
class Summary:
    duration_s: float
    submitted: int
    accepted: int
    rejected: int
    succeeded: int
    failed: int
    lost: int  # accepted but never reached succeeded/failed: must be 0
    load_onset_s: float
    time_to_scale_up_s: float | None  # onset -> first ready replica above the starting count
    time_to_peak_replicas_s: float | None  # onset -> the run's highest ready count reached
    start_replicas: int
    peak_replicas: int
    peak_backlog: float
    peak_backlog_at_s: float
    latency_p50_s: float | None
    latency_p95_s: float | None
    latency_p99_s: float | None
    latency_max_s: float | None


# --- reading ----------------------------------------------------------------------------------


def read_samples(path: Path) -> list[Sample]:
    rows = _read_csv(path, SAMPLE_COLUMNS)
    samples = [
        Sample(
            t_s=float(r["t_s"]),
            offered_per_s=float(r["offered_per_s"]),
            backlog=float(r["backlog"]),
            replicas_desired=int(float(r["replicas_desired"])),
            replicas_ready=int(float(r["replicas_ready"])),
            completed_per_s=float(r["completed_per_s"]),
            pool=r.get("pool") or DEFAULT_POOL,
        )
        for r in rows
    ]
    return sorted(samples, key=lambda s: s.t_s)


def read_jobs(path: Path) -> list[JobRecord]:
    rows = _read_csv(path, JOB_COLUMNS)
    return [
        JobRecord(
            job_id=r["job_id"],
            submitted_s=float(r["submitted_s"]),
            http_status=int(r["http_status"]),
            finished_s=float(r["finished_s"]) if r["finished_s"].strip() else None,
            status=r["status"].strip(),
            pool=r.get("pool") or DEFAULT_POOL,
        )
        for r in rows
    ]


def _read_csv(path: Path, columns: Sequence[str]) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = set(columns) - OPTIONAL_COLUMNS - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: missing column(s) {sorted(missing)}")
        return list(reader)


# --- numbers ----------------------------------------------------------------------------------


def percentile(values: Iterable[float], p: float) -> float | None:
    """The p-th percentile (0..100) with linear interpolation between ranks (numpy's default);
    None for no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    if not 0 <= p <= 100:
        raise ValueError("p must be within 0..100")
    rank = p / 100 * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def load_onset(samples: Sequence[Sample]) -> float:
    """First sampling instant at which the offered rate exceeds the starting rate."""
    if not samples:
        return 0.0
    base = samples[0].offered_per_s
    return next((s.t_s for s in samples if s.offered_per_s > base), samples[0].t_s)


def summarize(samples: Sequence[Sample], jobs: Sequence[JobRecord]) -> Summary:
    if not samples:
        raise ValueError("no samples")
    onset = load_onset(samples)
    start_replicas = samples[0].replicas_ready
    peak_replicas = max(s.replicas_ready for s in samples)
    after_onset = [s for s in samples if s.t_s >= onset]
    first_up = next((s.t_s for s in after_onset if s.replicas_ready > start_replicas), None)
    first_peak = next((s.t_s for s in after_onset if s.replicas_ready == peak_replicas), None)
    if peak_replicas <= start_replicas:
        first_peak = None
    peak = max(samples, key=lambda s: s.backlog)

    accepted = [j for j in jobs if j.accepted]
    latencies = [lat for j in accepted if (lat := j.latency_s) is not None]
    return Summary(
        duration_s=samples[-1].t_s - samples[0].t_s,
        submitted=len(jobs),
        accepted=len(accepted),
        rejected=len(jobs) - len(accepted),
        succeeded=sum(j.status == "succeeded" for j in accepted),
        failed=sum(j.status == "failed" for j in accepted),
        lost=sum(j.status not in TERMINAL for j in accepted),
        load_onset_s=onset,
        time_to_scale_up_s=None if first_up is None else first_up - onset,
        time_to_peak_replicas_s=None if first_peak is None else first_peak - onset,
        start_replicas=start_replicas,
        peak_replicas=peak_replicas,
        peak_backlog=peak.backlog,
        peak_backlog_at_s=peak.t_s,
        latency_p50_s=percentile(latencies, 50),
        latency_p95_s=percentile(latencies, 95),
        latency_p99_s=percentile(latencies, 99),
        latency_max_s=max(latencies) if latencies else None,
    )


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} s"


def measure_rows(summary: Summary) -> list[tuple[str, str]]:
    """The summary table's (measure, value) rows."""
    lost = "none" if summary.lost == 0 else f"**{summary.lost} LOST**"
    latencies = (summary.latency_p50_s, summary.latency_p95_s, summary.latency_p99_s, summary.latency_max_s)
    return [
        ("duration", f"{summary.duration_s:.0f} s"),
        ("submitted / accepted (202) / rejected", f"{summary.submitted} / {summary.accepted} / {summary.rejected}"),
        ("succeeded / failed", f"{summary.succeeded} / {summary.failed}"),
        ("jobs lost (accepted, never finished)", lost),
        ("load increase at", f"{summary.load_onset_s:.0f} s"),
        ("time to scale up (first extra worker ready)", _seconds(summary.time_to_scale_up_s)),
        ("time to peak workers", _seconds(summary.time_to_peak_replicas_s)),
        ("workers: start / peak", f"{summary.start_replicas} / {summary.peak_replicas}"),
        ("peak backlog", f"{summary.peak_backlog:.0f} jobs at {summary.peak_backlog_at_s:.0f} s"),
        ("latency p50 / p95 / p99 / max", " / ".join(_seconds(v) for v in latencies)),
    ]


LATENCY_NOTE = "Latency is submission (202) to the job's final status, over accepted jobs that finished."


def render_markdown(summary: Summary, *, title: str, notes: Sequence[str] = ()) -> str:
    lines = [f"# {title}", "", "| measure | value |", "| --- | --- |"]
    lines += [f"| {measure} | {value} |" for measure, value in measure_rows(summary)]
    lines += ["", LATENCY_NOTE, ""]
    lines += [f"![{name[:-4]}]({name})" for name in PLOTS]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"


# --- several pools ----------------------------------------------------------------------------

# The sampler and each pool's autoscaler read the same backlog series at different instants (the
# sampler every second): a scale-up may come up to about two sampling periods before the sampler
# records the backlog that caused it.
SCALING_SLACK_S = 2.0


def split_by_pool(
    samples: Sequence[Sample], jobs: Sequence[JobRecord]
) -> dict[str, tuple[list[Sample], list[JobRecord]]]:
    """Each pool's samples and jobs, pools in the order they first appear in ``samples``."""
    pools: dict[str, tuple[list[Sample], list[JobRecord]]] = {}
    for sample in samples:
        pools.setdefault(sample.pool, ([], []))[0].append(sample)
    for job in jobs:
        if job.pool not in pools:
            raise ValueError(f"jobs.csv names pool {job.pool!r}, which samples.csv has no rows for")
        pools[job.pool][1].append(job)
    return pools


@dataclass(frozen=True)
class PoolVerdict:
    """Whether one pool's autoscaler acted on that pool's own backlog.

    ``over_target_at_s``: the first sample at which the pool's backlog exceeded what its
    autoscaler tolerates for the workers it had (target per worker x the workers it wanted until
    then x (1 + tolerance)): the one reason an HPA on that backlog adds workers. ``scaled_up_at_s``: the
    first sample at which the pool's autoscaler wanted more workers than at the start."""

    pool: str
    target_per_worker: float
    tolerance: float
    start_replicas: int
    peak_desired: int
    peak_backlog: float
    over_target_at_s: float | None
    scaled_up_at_s: float | None
    slack_s: float = SCALING_SLACK_S

    @property
    def scaled_up(self) -> bool:
        return self.scaled_up_at_s is not None

    @property
    def on_own_backlog(self) -> bool:
        """It scaled up after its own backlog went over its target, or it neither went over
        nor scaled up."""
        if self.scaled_up_at_s is None:
            return self.over_target_at_s is None
        return self.over_target_at_s is not None and self.over_target_at_s <= self.scaled_up_at_s + self.slack_s

    def describe(self) -> str:
        limit = f"{self.target_per_worker:g} jobs per worker (+{self.tolerance:.0%} tolerance)"
        if self.scaled_up_at_s is not None:
            if self.over_target_at_s is None:
                cause = f"although its backlog never went over {limit}"
            else:
                cause = f"after its backlog went over {limit} at {self.over_target_at_s:.0f} s"
            return (
                f"`{self.pool}` scaled up at {self.scaled_up_at_s:.0f} s, {cause}: "
                f"{self.start_replicas} -> {self.peak_desired} workers wanted, "
                f"peak backlog {self.peak_backlog:.0f} jobs."
            )
        if self.over_target_at_s is not None:
            return (
                f"`{self.pool}` stayed at {self.start_replicas} worker(s) although its backlog went over {limit} "
                f"at {self.over_target_at_s:.0f} s (peak {self.peak_backlog:.0f} jobs)."
            )
        return (
            f"`{self.pool}` stayed at {self.start_replicas} worker(s): its backlog peaked at "
            f"{self.peak_backlog:.0f} jobs, never over {limit}."
        )


def judge_pool(
    pool: str,
    samples: Sequence[Sample],
    *,
    target_per_worker: float,
    tolerance: float,
    slack_s: float = SCALING_SLACK_S,
) -> PoolVerdict:
    """One pool's :class:`PoolVerdict` from its samples (time-ordered)."""
    if not samples:
        raise ValueError(f"pool {pool!r} has no samples")
    start = samples[0].replicas_desired
    # Compared with the workers wanted before the sample, as the HPA compares its metric with the
    # replicas it has: the sample that first shows a backlog often shows the scale-up it caused.
    before = [start] + [s.replicas_desired for s in samples[:-1]]
    over = next(
        (
            s.t_s
            for s, workers in zip(samples, before, strict=True)
            if s.backlog > target_per_worker * max(workers, 1) * (1 + tolerance) + 1e-9
        ),
        None,
    )
    up = next((s.t_s for s in samples if s.replicas_desired > start), None)
    return PoolVerdict(
        pool=pool,
        target_per_worker=target_per_worker,
        tolerance=tolerance,
        start_replicas=start,
        peak_desired=max(s.replicas_desired for s in samples),
        peak_backlog=max(s.backlog for s in samples),
        over_target_at_s=over,
        scaled_up_at_s=up,
        slack_s=slack_s,
    )


def judge(
    samples_by_pool: Mapping[str, Sequence[Sample]],
    targets: Mapping[str, float],
    *,
    tolerance: float = 0.1,
    slack_s: float = SCALING_SLACK_S,
) -> list[PoolVerdict]:
    """Every pool's verdict (``targets``: each pool's HPA target backlog per worker)."""
    missing = set(samples_by_pool) - set(targets)
    if missing:
        raise ValueError(f"no target per worker for pool(s) {sorted(missing)}")
    return [
        judge_pool(pool, samples, target_per_worker=targets[pool], tolerance=tolerance, slack_s=slack_s)
        for pool, samples in samples_by_pool.items()
    ]


def verdict_lines(verdicts: Sequence[PoolVerdict]) -> list[str]:
    """The verdict as markdown: a headline, one line per pool, and the contrast between the pools
    that scaled and those that did not."""
    independent = all(v.on_own_backlog for v in verdicts)
    busy = [f"`{v.pool}`" for v in verdicts if v.scaled_up]
    quiet = [f"`{v.pool}`" for v in verdicts if not v.scaled_up]
    if independent:
        headline = "**Verdict: each pool scaled on its own backlog.**"
        if busy and quiet:
            headline += f" {', '.join(quiet)} did not scale while {', '.join(busy)} did."
        elif not busy:
            headline += (
                " No pool's backlog called for more workers, so none scaled (the load was too light to show it)."
            )
        else:
            headline += " Every pool's backlog called for more workers; a quiet pool would show the contrast."
    else:
        wrong = [f"`{v.pool}`" for v in verdicts if not v.on_own_backlog]
        headline = f"**Verdict: NOT every pool scaled on its own backlog** ({', '.join(wrong)})."
    return [headline, ""] + [f"- {v.describe()}" for v in verdicts]


def render_pools_markdown(
    summaries: Mapping[str, Summary],
    verdicts: Sequence[PoolVerdict],
    *,
    title: str,
    notes: Sequence[str] = (),
) -> str:
    pools = list(summaries)
    rows = {pool: measure_rows(summary) for pool, summary in summaries.items()}
    lines = [f"# {title}", ""]
    if verdicts:
        lines += verdict_lines(verdicts) + [""]
    lines += ["| measure | " + " | ".join(f"pool `{p}`" for p in pools) + " |", "| --- |" + " --- |" * len(pools)]
    for i, (measure, _) in enumerate(rows[pools[0]]):
        lines.append(f"| {measure} | " + " | ".join(rows[p][i][1] for p in pools) + " |")
    lines += ["", LATENCY_NOTE + " Each pool's backlog is its own queue's.", ""]
    lines += [f"![{name[:-4]}]({name})" for name in PLOTS]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"


# --- plots ------------------------------------------------------------------------------------


def plot(
    samples: Sequence[Sample],
    jobs: Sequence[JobRecord],
    out_dir: Path,
    *,
    target_per_replica: float | None = None,
) -> list[Path]:
    """Write the four PNG plots; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    t = [s.t_s for s in samples]
    written = []

    fig, ax = plt.subplots(figsize=(9, 4))
    ax.plot(t, [s.backlog for s in samples], label="backlog (ready + unacked)")
    per_replica = [s.backlog / s.replicas_ready if s.replicas_ready else math.nan for s in samples]
    ax.plot(t, per_replica, label="backlog per ready worker")
    if target_per_replica is not None:
        ax.axhline(
            target_per_replica,
            linestyle="--",
            color="grey",
            label="HPA target per worker",
        )
    _finish(ax, "Backlog", "jobs")
    written.append(_save(fig, out_dir / "backlog.png"))

    fig, ax = plt.subplots(figsize=(9, 4))
    ax.step(t, [s.replicas_desired for s in samples], where="post", label="desired")
    ax.step(t, [s.replicas_ready for s in samples], where="post", label="ready")
    _finish(ax, "Workers", "replicas")
    written.append(_save(fig, out_dir / "replicas.png"))

    fig, ax = plt.subplots(figsize=(9, 4))
    ax.plot(t, [s.offered_per_s for s in samples], label="offered")
    ax.plot(t, [s.completed_per_s for s in samples], label="completed")
    _finish(ax, "Throughput", "jobs per second")
    written.append(_save(fig, out_dir / "throughput.png"))

    fig, ax = plt.subplots(figsize=(9, 4))
    finished = [(j.submitted_s, j.latency_s) for j in jobs if j.accepted and j.latency_s is not None]
    if finished:
        ax.scatter(
            [f[0] for f in finished],
            [f[1] for f in finished],
            s=4,
            alpha=0.5,
            label="job",
        )
        p95 = percentile([f[1] for f in finished], 95)
        ax.axhline(p95, linestyle="--", color="grey", label=f"p95 {p95:.1f} s")
    _finish(ax, "Latency by submission time", "seconds to final status")
    written.append(_save(fig, out_dir / "latency.png"))
    return written


def plot_pools(
    samples_by_pool: Mapping[str, Sequence[Sample]],
    jobs: Sequence[JobRecord],
    out_dir: Path,
    *,
    targets: Mapping[str, float] | None = None,
) -> list[Path]:
    """The same four PNG plots for a run of several pools: backlog, workers and throughput with
    one row per pool on a shared time axis (workers on a shared scale too, so a pool that did not
    scale is seen next to one that did); latency with a colour per pool."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    pools = list(samples_by_pool)
    targets = targets or {}
    written = []

    def rows(title: str, sharey: bool) -> tuple[Figure, list[Axes]]:
        fig, axes = plt.subplots(len(pools), 1, figsize=(9, 2.6 * len(pools) + 0.4), sharex=True, sharey=sharey)
        fig.suptitle(title)
        return fig, list(axes) if len(pools) > 1 else [axes]

    fig, axes = rows("Backlog (each pool's own queue)", sharey=False)
    for ax, pool in zip(axes, pools, strict=True):
        samples = samples_by_pool[pool]
        t = [s.t_s for s in samples]
        ax.plot(t, [s.backlog for s in samples], label="backlog (ready + unacked)")
        ax.plot(
            t,
            [s.backlog / s.replicas_ready if s.replicas_ready else math.nan for s in samples],
            label="per ready worker",
        )
        if pool in targets:
            ax.axhline(targets[pool], linestyle="--", color="grey", label="HPA target per worker")
        _finish(ax, f"pool {pool}", "jobs")
    written.append(_save(fig, out_dir / "backlog.png"))

    fig, axes = rows("Workers", sharey=True)
    for ax, pool in zip(axes, pools, strict=True):
        samples = samples_by_pool[pool]
        t = [s.t_s for s in samples]
        ax.step(t, [s.replicas_desired for s in samples], where="post", label="desired")
        ax.step(t, [s.replicas_ready for s in samples], where="post", label="ready")
        _finish(ax, f"pool {pool}", "replicas")
    written.append(_save(fig, out_dir / "replicas.png"))

    fig, axes = rows("Throughput", sharey=False)
    for ax, pool in zip(axes, pools, strict=True):
        samples = samples_by_pool[pool]
        t = [s.t_s for s in samples]
        ax.plot(t, [s.offered_per_s for s in samples], label="offered")
        ax.plot(t, [s.completed_per_s for s in samples], label="completed")
        _finish(ax, f"pool {pool}", "jobs per second")
    written.append(_save(fig, out_dir / "throughput.png"))

    fig, ax = plt.subplots(figsize=(9, 4))
    for pool in pools:
        finished = [
            (j.submitted_s, j.latency_s) for j in jobs if j.pool == pool and j.accepted and j.latency_s is not None
        ]
        if finished:
            p95 = percentile([f[1] for f in finished], 95)
            ax.scatter(
                [f[0] for f in finished], [f[1] for f in finished], s=4, alpha=0.5, label=f"{pool} (p95 {p95:.1f} s)"
            )
    _finish(ax, "Latency by submission time", "seconds to final status")
    written.append(_save(fig, out_dir / "latency.png"))
    return written


def _finish(ax: Axes, title: str, ylabel: str) -> None:
    ax.set_title(title)
    ax.set_xlabel("seconds since start")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper right")


def _save(fig: Figure, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# --- the folder -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunReport:
    """A run's summary per pool (one entry for a run of one pool) and, for several pools, the
    verdict on each."""

    pools: dict[str, Summary]
    verdicts: tuple[PoolVerdict, ...] = ()

    def _total(self, name: str) -> int:
        return sum(getattr(summary, name) for summary in self.pools.values())

    @property
    def submitted(self) -> int:
        return self._total("submitted")

    @property
    def accepted(self) -> int:
        return self._total("accepted")

    @property
    def rejected(self) -> int:
        return self._total("rejected")

    @property
    def succeeded(self) -> int:
        return self._total("succeeded")

    @property
    def failed(self) -> int:
        return self._total("failed")

    @property
    def lost(self) -> int:
        return self._total("lost")

    @property
    def independent(self) -> bool | None:
        """Whether every pool scaled on its own backlog; None when not judged (one pool, or no
        targets known)."""
        return all(v.on_own_backlog for v in self.verdicts) if self.verdicts else None


def run_targets(run_dir: Path) -> tuple[dict[str, float], float | None]:
    """Each pool's HPA target per worker and the tolerance, as the runner recorded them in
    ``run.json`` (empty and None for a folder without them)."""
    path = run_dir / "run.json"
    if not path.is_file():
        return {}, None
    run = json.loads(path.read_text())
    pools = run.get("pools") or {}
    targets = {name: float(p["target_per_worker"]) for name, p in pools.items() if "target_per_worker" in p}
    tolerance = run.get("tolerance")
    return targets, None if tolerance is None else float(tolerance)


def write_report(
    run_dir: Path,
    *,
    title: str,
    target_per_replica: float | None = None,
    targets: Mapping[str, float] | None = None,
    tolerance: float = 0.1,
    notes: Sequence[str] = (),
) -> RunReport:
    """Read ``run_dir``/samples.csv and jobs.csv; write the plots and summary.md there.

    ``targets``: each pool's HPA target per worker (``target_per_replica`` applies to every pool
    not in it). A run of several pools is judged only when every pool has a target."""
    samples = read_samples(run_dir / "samples.csv")
    jobs = read_jobs(run_dir / "jobs.csv")
    pools = split_by_pool(samples, jobs)
    per_pool_targets = {
        pool: target for pool in pools if (target := (targets or {}).get(pool, target_per_replica)) is not None
    }
    summaries = {pool: summarize(pool_samples, pool_jobs) for pool, (pool_samples, pool_jobs) in pools.items()}
    if len(pools) == 1:
        (pool,) = pools
        plot(samples, jobs, run_dir, target_per_replica=per_pool_targets.get(pool))
        (run_dir / "summary.md").write_text(render_markdown(summaries[pool], title=title, notes=notes))
        result = RunReport(summaries)
    else:
        samples_by_pool = {pool: pool_samples for pool, (pool_samples, _) in pools.items()}
        verdicts = (
            judge(samples_by_pool, per_pool_targets, tolerance=tolerance) if set(per_pool_targets) == set(pools) else []
        )
        plot_pools(samples_by_pool, jobs, run_dir, targets=per_pool_targets)
        (run_dir / "summary.md").write_text(render_pools_markdown(summaries, verdicts, title=title, notes=notes))
        result = RunReport(summaries, tuple(verdicts))
    logger.info("report written to %s (lost=%d, independent=%s)", run_dir, result.lost, result.independent)
    return result
