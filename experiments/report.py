"""Turn an experiment's recorded data into a report folder: PNG plots and a markdown summary.

An experiment run folder holds two CSV files (written by the runner):

``samples.csv`` -- one row per sampling instant:
    t_s               seconds since the run started
    offered_per_s     submissions per second the load profile asked for at t_s
    backlog           messages ready + unacked in the jobs queue (the HPA's metric)
    replicas_desired  replica count the autoscaler (HPA or emulator) wanted
    replicas_ready    workers ready and consuming
    completed_per_s   jobs finishing per second (succeeded or failed)

``jobs.csv`` -- one row per submission:
    job_id, submitted_s, http_status (202 = accepted), finished_s (empty if never),
    status (the job's last known status: succeeded, failed, queued, running, or missing
    when its id answered 404)

Everything here is a pure function of those rows except :func:`write_report`, which reads
the CSVs and writes ``summary.md`` and the plots next to them.
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Iterable, Sequence
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
)
JOB_COLUMNS = ("job_id", "submitted_s", "http_status", "finished_s", "status")
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


@dataclass(frozen=True)
class JobRecord:
    job_id: str
    submitted_s: float
    http_status: int
    finished_s: float | None
    status: str

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
        )
        for r in rows
    ]


def _read_csv(path: Path, columns: Sequence[str]) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = set(columns) - set(reader.fieldnames or ())
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


def render_markdown(summary: Summary, *, title: str, notes: Sequence[str] = ()) -> str:
    def seconds(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.1f} s"

    verdict = "none" if summary.lost == 0 else f"**{summary.lost} LOST**"
    lines = [
        f"# {title}",
        "",
        "| measure | value |",
        "| --- | --- |",
        f"| duration | {summary.duration_s:.0f} s |",
        f"| submitted / accepted (202) / rejected | {summary.submitted} / {summary.accepted} / {summary.rejected} |",
        f"| succeeded / failed | {summary.succeeded} / {summary.failed} |",
        f"| jobs lost (accepted, never finished) | {verdict} |",
        f"| load increase at | {summary.load_onset_s:.0f} s |",
        f"| time to scale up (first extra worker ready) | {seconds(summary.time_to_scale_up_s)} |",
        f"| time to peak workers | {seconds(summary.time_to_peak_replicas_s)} |",
        f"| workers: start / peak | {summary.start_replicas} / {summary.peak_replicas} |",
        f"| peak backlog | {summary.peak_backlog:.0f} jobs at {summary.peak_backlog_at_s:.0f} s |",
        "| latency p50 / p95 / p99 / max | "
        + " / ".join(
            seconds(v)
            for v in (
                summary.latency_p50_s,
                summary.latency_p95_s,
                summary.latency_p99_s,
                summary.latency_max_s,
            )
        )
        + " |",
        "",
        "Latency is submission (202) to the job's final status, over accepted jobs that finished.",
        "",
    ]
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


def write_report(
    run_dir: Path,
    *,
    title: str,
    target_per_replica: float | None = None,
    notes: Sequence[str] = (),
) -> Summary:
    """Read ``run_dir``/samples.csv and jobs.csv; write the plots and summary.md there."""
    samples = read_samples(run_dir / "samples.csv")
    jobs = read_jobs(run_dir / "jobs.csv")
    summary = summarize(samples, jobs)
    plot(samples, jobs, run_dir, target_per_replica=target_per_replica)
    (run_dir / "summary.md").write_text(render_markdown(summary, title=title, notes=notes))
    logger.info("report written to %s (lost=%d)", run_dir, summary.lost)
    return summary
