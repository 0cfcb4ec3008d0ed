"""The experiment report on synthetic run data: summary numbers, markdown, PNG plots, CLI."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from devstack.paths import REPO
from experiments.report import (
    JOB_COLUMNS,
    PLOTS,
    SAMPLE_COLUMNS,
    percentile,
    read_jobs,
    read_samples,
    render_markdown,
    summarize,
    write_report,
)


def ready_workers(t: float) -> int:
    # One worker, a second ready at 95 s, a third at 125 s, the fourth (peak) at 140 s.
    return 1 + (t >= 95) + (t >= 125) + (t >= 140)


def backlog(t: float) -> float:
    # Rises from the load step at 60 s to 120 jobs at 110 s, then drains.
    if t < 60:
        return 0.0
    if t <= 110:
        return (t - 60) * 2.4
    return max(0.0, 120 - (t - 110) * 1.5)


def write_run(run_dir: Path, *, lost: int) -> list[float]:
    """samples.csv + jobs.csv of a made-up step experiment; returns the finished latencies."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with (run_dir / "samples.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(SAMPLE_COLUMNS)
        for t in range(0, 305, 5):
            writer.writerow(
                [
                    t,
                    1.0 if t < 60 else 4.0,
                    backlog(t),
                    ready_workers(t) + (t >= 80),
                    ready_workers(t),
                    min(4.0, ready_workers(t) * 1.1),
                ]
            )
    latencies = []
    with (run_dir / "jobs.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(JOB_COLUMNS)
        for i in range(100):
            submitted = float(i * 2)
            latency = float(i % 50 + 1)  # 1..50 s, twice
            status = "failed" if i == 7 else "succeeded"
            writer.writerow([f"job-{i}", submitted, 202, submitted + latency, status])
            latencies.append(latency)
        for i in range(lost):
            writer.writerow([f"lost-{i}", 150.0 + i, 202, "", "queued"])
        writer.writerow(["rejected-0", 151.0, 429, "", ""])
    return latencies


def test_percentile_interpolates_linearly() -> None:
    assert percentile([], 95) is None
    assert percentile([3.0], 95) == 3.0
    assert percentile([1, 2, 3, 4, 5], 50) == 3
    assert percentile(range(1, 101), 95) == pytest.approx(95.05)
    assert percentile([10, 0], 25) == 2.5


def test_summary_numbers(tmp_path: Path) -> None:
    latencies = write_run(tmp_path, lost=2)
    summary = summarize(read_samples(tmp_path / "samples.csv"), read_jobs(tmp_path / "jobs.csv"))
    assert summary.duration_s == 300
    assert (summary.submitted, summary.accepted, summary.rejected) == (103, 102, 1)
    assert (summary.succeeded, summary.failed, summary.lost) == (99, 1, 2)
    assert summary.load_onset_s == 60
    assert summary.time_to_scale_up_s == 35  # second worker ready at 95 s
    assert summary.time_to_peak_replicas_s == 80  # fourth at 140 s
    assert (summary.start_replicas, summary.peak_replicas) == (1, 4)
    assert (summary.peak_backlog, summary.peak_backlog_at_s) == (pytest.approx(120), 110)
    assert summary.latency_p95_s == pytest.approx(percentile(latencies, 95))
    assert summary.latency_max_s == 50


def test_no_scale_up_is_reported_as_such(tmp_path: Path) -> None:
    write_run(tmp_path, lost=0)
    samples = [s.__class__(**{**s.__dict__, "replicas_ready": 2}) for s in read_samples(tmp_path / "samples.csv")]
    summary = summarize(samples, read_jobs(tmp_path / "jobs.csv"))
    assert summary.time_to_scale_up_s is None
    assert summary.time_to_peak_replicas_s is None
    assert "| time to scale up (first extra worker ready) | n/a |" in render_markdown(summary, title="t")


def test_markdown_flags_lost_jobs(tmp_path: Path) -> None:
    write_run(tmp_path, lost=2)
    summary = summarize(read_samples(tmp_path / "samples.csv"), read_jobs(tmp_path / "jobs.csv"))
    text = render_markdown(summary, title="Step experiment", notes=["synthetic data"])
    assert text.startswith("# Step experiment\n")
    assert "**2 LOST**" in text
    assert "| time to scale up (first extra worker ready) | 35.0 s |" in text
    assert "| peak backlog | 120 jobs at 110 s |" in text
    for name in PLOTS:
        assert f"]({name})" in text
    assert "- synthetic data" in text


def test_write_report_makes_the_plots(tmp_path: Path) -> None:
    write_run(tmp_path, lost=0)
    summary = write_report(tmp_path, title="Step", target_per_replica=30)
    assert summary.lost == 0
    assert "| jobs lost (accepted, never finished) | none |" in (tmp_path / "summary.md").read_text()
    for name in PLOTS:
        path = tmp_path / name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        with Image.open(path) as image:
            assert image.size == (900, 400), name
            # Not a blank canvas: a plot has many colours.
            assert len(image.convert("RGB").getcolors(maxcolors=100_000) or []) > 50, name


def test_missing_columns_are_reported(tmp_path: Path) -> None:
    (tmp_path / "samples.csv").write_text("t_s,backlog\n0,1\n")
    with pytest.raises(ValueError, match="missing column"):
        read_samples(tmp_path / "samples.csv")


@pytest.mark.parametrize(("lost", "exit_code"), [(0, 0), (1, 1)])
def test_cli_report_exit_code_tells_whether_jobs_were_lost(tmp_path: Path, lost: int, exit_code: int) -> None:
    write_run(tmp_path, lost=lost)
    result = subprocess.run(
        [sys.executable, "-m", "experiments", "report", str(tmp_path), "--title", "CLI"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == exit_code, result.stderr
    assert f"lost={lost}" in result.stdout
    assert (tmp_path / "summary.md").read_text().startswith("# CLI\n")
