"""The experiment runner end to end on a tiny profile: a real local stack (nginx, gateway,
results, worker processes on the machine's RabbitMQ), a real Prometheus, the HPA emulator with
the chart's values. No timing assertions: only that the run completes, writes its report, loses
no job, and that every worker the autoscaler stopped drained and exited 0."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from experiments import runner
from experiments.report import JOB_COLUMNS, PLOTS, SAMPLE_COLUMNS

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]


def test_tiny_step_experiment_writes_a_complete_report_and_loses_nothing(
    tmp_path: Path, seeded: tuple[Path, Path]
) -> None:
    models_dir, gallery_dir = seeded
    out = tmp_path / "report"
    summary = runner.run_local(
        runner.LocalRun(
            profile="step",
            out_dir=out,
            time_scale=1.0,
            # 2/s for 2 s, 5/s for 6 s, 2/s for 2 s: 38 jobs.
            profile_params={"base": 2, "high": 5, "at_s": 2, "hold_s": 6, "tail_s": 2},
            service_ms=300,
            settle_s=2,
            models_dir=models_dir,
            gallery_dir=gallery_dir,
            work_dir=tmp_path / "work",
        )
    )
    assert summary.lost == 0
    assert summary.submitted == 38
    assert summary.accepted == summary.succeeded == 38
    for name in ("summary.md", "samples.csv", "jobs.csv", "scaling.csv", "run.json", *PLOTS):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    with (out / "samples.csv").open() as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames or ()) == SAMPLE_COLUMNS
        samples = list(reader)
    assert len(samples) >= 10
    assert max(float(s["backlog"]) for s in samples) > 0  # Prometheus saw the queue
    with (out / "jobs.csv").open() as handle:
        jobs = list(csv.DictReader(handle))
    assert tuple(jobs[0]) == JOB_COLUMNS
    assert {j["status"] for j in jobs} == {"succeeded"}
    assert "| jobs lost (accepted, never finished) | none |" in (out / "summary.md").read_text()
    run = json.loads((out / "run.json").read_text())
    assert run["hpa"]["maxReplicas"] >= run["hpa"]["minReplicas"] >= 1
    assert all(w["exit_code"] == 0 for w in run["workers_stopped"]), run["workers_stopped"]
