"""The experiment report on synthetic run data: summary numbers, markdown, PNG plots, CLI; a run
of several pools reported pool by pool, with the verdict on whether each scaled on its own
backlog."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from devstack.paths import REPO
from experiments.report import (
    DEFAULT_POOL,
    JOB_COLUMNS,
    PLOTS,
    SAMPLE_COLUMNS,
    JobRecord,
    Sample,
    judge,
    judge_pool,
    percentile,
    read_jobs,
    read_samples,
    render_markdown,
    split_by_pool,
    summarize,
    verdict_lines,
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
    """samples.csv + jobs.csv of a made-up step experiment of one pool, without the pool column
    (as runs before pools wrote them); returns the finished latencies."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with (run_dir / "samples.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([c for c in SAMPLE_COLUMNS if c != "pool"])
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
        writer.writerow([c for c in JOB_COLUMNS if c != "pool"])
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
    samples, jobs = read_samples(tmp_path / "samples.csv"), read_jobs(tmp_path / "jobs.csv")
    assert {s.pool for s in samples} == {j.pool for j in jobs} == {DEFAULT_POOL}  # no pool column: one pool
    summary = summarize(samples, jobs)
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


# --- several pools ----------------------------------------------------------------------------

TARGETS = {"lite": 5.0, "big": 5.0}


def lite_backlog(t: float) -> float:
    # The burst: from 20 s the backlog grows 3 jobs/s to 60 at 40 s, then drains to 0 by 70 s.
    if t < 20:
        return 0.0
    return 3 * (t - 20) if t <= 40 else max(0.0, 60 - 2 * (t - 40))


def lite_desired(t: float) -> int:
    # 5.5 jobs (5 per worker + 10 %) is passed at 22 s; the autoscaler adds workers from 23 s.
    return 1 + (t >= 23) + 2 * (t >= 26) - (t >= 90) - (t >= 100) - (t >= 110)


def pool_samples(pool: str, t: float, *, big_desired: int = 1, big_backlog: float | None = None) -> Sample:
    if pool == "lite":
        desired = lite_desired(t)
        return Sample(
            t, 4.0 if 20 <= t < 40 else 0.5, lite_backlog(t), desired, desired - (t >= 23 and t < 30), 1.2, "lite"
        )
    backlog = (1.0 if int(t) % 3 == 0 else 0.0) if big_backlog is None else big_backlog
    return Sample(t, 0.5, backlog, big_desired, big_desired, 0.5, "big")


def two_pool_samples() -> list[Sample]:
    return [pool_samples(pool, float(t)) for t in range(0, 121) for pool in ("lite", "big")]


def write_two_pool_run(run_dir: Path, *, lost: int = 0, run_json: bool = True) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    with (run_dir / "samples.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(SAMPLE_COLUMNS)
        for s in two_pool_samples():
            writer.writerow(
                [s.t_s, s.offered_per_s, s.backlog, s.replicas_desired, s.replicas_ready, s.completed_per_s, s.pool]
            )
    with (run_dir / "jobs.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(JOB_COLUMNS)
        for i in range(80):
            submitted = 20 + i / 4
            writer.writerow([f"lite-{i}", submitted, 202, submitted + 1 + i / 8, "succeeded", "lite"])
        for i in range(60):
            writer.writerow([f"big-{i}", 2.0 * i, 202, 2.0 * i + 0.8, "succeeded", "big"])
        for i in range(lost):
            writer.writerow([f"big-lost-{i}", 119.0, 202, "", "queued", "big"])
    if run_json:
        pools = {name: {"target_per_worker": target} for name, target in TARGETS.items()}
        (run_dir / "run.json").write_text(json.dumps({"tolerance": 0.1, "pools": pools}))


def test_rows_are_split_by_pool_in_order_of_appearance() -> None:
    samples = two_pool_samples()
    jobs = [JobRecord("a", 1.0, 202, 2.0, "succeeded", "big"), JobRecord("b", 1.0, 202, 3.0, "succeeded", "lite")]
    pools = split_by_pool(samples, jobs)
    assert list(pools) == ["lite", "big"]
    assert [j.job_id for j in pools["big"][1]] == ["a"]
    assert len(pools["lite"][0]) == len(pools["big"][0]) == 121
    with pytest.raises(ValueError, match="pool 'gpu'"):
        split_by_pool(samples, [JobRecord("c", 1.0, 202, 2.0, "succeeded", "gpu")])


def test_the_busy_pool_scaled_on_its_backlog_and_the_quiet_one_stayed() -> None:
    by_pool = {pool: samples for pool, (samples, _) in split_by_pool(two_pool_samples(), []).items()}
    lite, big = judge(by_pool, TARGETS, tolerance=0.1)
    assert (lite.pool, lite.over_target_at_s, lite.scaled_up_at_s) == ("lite", 22, 23)
    assert (lite.start_replicas, lite.peak_desired, lite.peak_backlog) == (1, 4, 60)
    assert lite.scaled_up and lite.on_own_backlog
    assert (big.over_target_at_s, big.scaled_up_at_s, big.peak_desired) == (None, None, 1)
    assert not big.scaled_up and big.on_own_backlog
    lines = verdict_lines([lite, big])
    assert lines[0] == "**Verdict: each pool scaled on its own backlog.** `big` did not scale while `lite` did."
    assert (
        "`lite` scaled up at 23 s, after its backlog went over 5 jobs per worker (+10% tolerance) at 22 s" in lines[2]
    )
    assert "`big` stayed at 1 worker(s): its backlog peaked at 1 jobs, never over 5 jobs per worker" in lines[3]


def test_a_pool_that_scaled_without_its_own_backlog_fails_the_verdict() -> None:
    # The quiet pool's workers follow the busy pool's: what one shared autoscaler would do.
    samples = [replace(s, replicas_desired=lite_desired(s.t_s)) if s.pool == "big" else s for s in two_pool_samples()]
    by_pool = {pool: rows for pool, (rows, _) in split_by_pool(samples, []).items()}
    lite, big = judge(by_pool, TARGETS)
    assert lite.on_own_backlog
    assert big.scaled_up and big.over_target_at_s is None and not big.on_own_backlog
    assert verdict_lines([lite, big])[0] == "**Verdict: NOT every pool scaled on its own backlog** (`big`)."
    assert "although its backlog never went over" in big.describe()


def test_a_backlog_and_the_scale_up_it_caused_seen_in_the_same_sample() -> None:
    # The autoscaler read 7 jobs at 15.0 s and asked for 2 workers; the sampler saw both at 15.3 s.
    samples = [
        Sample(t, 4.0, 0.0 if t < 15 else 7.0, 1 if t < 15 else 2, 1, 0.5, "lite")
        for t in (12.3, 13.3, 14.3, 15.3, 16.3)
    ]
    lite = judge_pool("lite", samples, target_per_worker=5, tolerance=0.1)
    assert (lite.over_target_at_s, lite.scaled_up_at_s) == (15.3, 15.3)
    assert lite.on_own_backlog
    # 7 jobs for the 2 workers wanted from then on is within target: no further over-target.
    assert judge_pool("lite", samples[3:], target_per_worker=5, tolerance=0.1).over_target_at_s is None


def test_a_pool_over_its_target_that_did_not_scale_fails_the_verdict() -> None:
    big = judge_pool(
        "big", [pool_samples("big", float(t), big_backlog=12) for t in range(10)], target_per_worker=5, tolerance=0.1
    )
    assert big.over_target_at_s == 0 and not big.scaled_up and not big.on_own_backlog
    assert "although its backlog went over" in big.describe()


def test_within_the_tolerance_is_not_over_the_target() -> None:
    at_limit = [pool_samples("big", float(t), big_backlog=5.5) for t in range(10)]
    assert judge_pool("big", at_limit, target_per_worker=5, tolerance=0.1).on_own_backlog
    assert not judge_pool("big", at_limit, target_per_worker=5, tolerance=0.05).on_own_backlog


def test_a_scale_up_long_before_the_backlog_rose_is_not_on_that_backlog() -> None:
    samples = [pool_samples("lite", float(t)) for t in range(121)]
    early = [replace(s, replicas_desired=2) if 10 <= s.t_s < 23 else s for s in samples]
    assert not judge_pool("lite", early, target_per_worker=5, tolerance=0.1).on_own_backlog
    # A scale-up recorded one sample before the backlog that caused it is within the slack.
    just_before = [replace(s, replicas_desired=2) if s.t_s == 21 else s for s in samples]
    assert judge_pool("lite", just_before, target_per_worker=5, tolerance=0.1).on_own_backlog


def test_no_pool_scaling_is_said_to_show_nothing() -> None:
    quiet = {
        "a": [pool_samples("big", float(t)) for t in range(5)],
        "b": [pool_samples("big", float(t)) for t in range(5)],
    }
    lines = verdict_lines(judge(quiet, {"a": 5, "b": 5}))
    assert "so none scaled" in lines[0]
    with pytest.raises(ValueError, match=r"no target per worker for pool\(s\) \['b'\]"):
        judge(quiet, {"a": 5})


def test_write_report_of_two_pools(tmp_path: Path) -> None:
    write_two_pool_run(tmp_path, lost=1)
    result = write_report(tmp_path, title="Two pools", targets=TARGETS, tolerance=0.1, notes=["made up"])
    assert list(result.pools) == ["lite", "big"]
    assert (result.submitted, result.succeeded, result.lost) == (141, 140, 1)
    assert result.pools["big"].lost == 1 and result.pools["lite"].lost == 0
    assert result.independent is True
    text = (tmp_path / "summary.md").read_text()
    assert text.startswith("# Two pools\n\n**Verdict: each pool scaled on its own backlog.**")
    assert "| measure | pool `lite` | pool `big` |" in text
    assert "| workers: start / peak | 1 / 4 | 1 / 1 |" in text
    assert "| jobs lost (accepted, never finished) | none | **1 LOST** |" in text
    assert "- made up" in text
    for name in PLOTS:
        with Image.open(tmp_path / name) as image:
            # One row per pool for backlog, workers and throughput; one chart for latency.
            assert image.size == ((900, 400) if name == "latency.png" else (900, 560)), name
            assert len(image.convert("RGB").getcolors(maxcolors=100_000) or []) > 50, name


def test_two_pools_without_targets_are_reported_but_not_judged(tmp_path: Path) -> None:
    write_two_pool_run(tmp_path, run_json=False)
    result = write_report(tmp_path, title="Two pools")
    assert result.verdicts == () and result.independent is None
    assert "Verdict" not in (tmp_path / "summary.md").read_text()


def test_cli_report_judges_two_pools_with_the_targets_in_run_json(tmp_path: Path) -> None:
    write_two_pool_run(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "experiments", "report", str(tmp_path), "--title", "CLI pools"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "lost=0 independent=true" in result.stdout
    assert "**Verdict: each pool scaled on its own backlog.**" in (tmp_path / "summary.md").read_text()
