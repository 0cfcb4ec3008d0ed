"""The experiment runner end to end on tiny profiles: a real local stack (nginx, gateway,
results, worker processes), a real Prometheus, the HPA emulator with the chart's values, and a
RabbitMQ node of the tests' own serving its per-queue metrics (the machine's broker may not).
No timing assertions: only that the run completes, writes its report, loses no job, that every
worker the autoscaler stopped drained and exited 0, and, with two pools, that the quiet pool
did not scale with the busy one."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from experiments import runner
from experiments.pools import parse_pools
from experiments.report import JOB_COLUMNS, PLOTS, SAMPLE_COLUMNS
from tests.utils.rabbitmq_node import RabbitNode, rabbit_node

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]


@pytest.fixture(scope="module")
def metrics_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitNode]:
    with rabbit_node(tmp_path_factory.mktemp("rabbitmq"), prometheus=True) as node:
        yield node


def read_csv(path: Path) -> tuple[tuple[str, ...], list[dict[str, str]]]:
    with path.open() as handle:
        reader = csv.DictReader(handle)
        return tuple(reader.fieldnames or ()), list(reader)


def test_tiny_step_experiment_writes_a_complete_report_and_loses_nothing(
    tmp_path: Path, seeded: tuple[Path, Path], metrics_broker: RabbitNode
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
            broker_url=metrics_broker.url,
            rabbitmq_metrics=metrics_broker.metrics_address,
        )
    )
    assert summary.lost == 0
    assert summary.submitted == 38
    assert summary.accepted == summary.succeeded == 38
    for name in ("summary.md", "samples.csv", "jobs.csv", "scaling.csv", "run.json", *PLOTS):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    columns, samples = read_csv(out / "samples.csv")
    assert columns == SAMPLE_COLUMNS
    assert len(samples) >= 10
    assert {s["pool"] for s in samples} == {"default"}
    assert max(float(s["backlog"]) for s in samples) > 0  # Prometheus saw the queue
    columns, jobs = read_csv(out / "jobs.csv")
    assert columns == JOB_COLUMNS
    assert {j["status"] for j in jobs} == {"succeeded"}
    assert "| jobs lost (accepted, never finished) | none |" in (out / "summary.md").read_text()
    run = json.loads((out / "run.json").read_text())
    (pool,) = run["pools"].values()
    assert pool["queue"].endswith(".jobs.default")
    assert pool["hpa"]["maxReplicas"] >= pool["hpa"]["minReplicas"] >= 1
    assert all(w["exit_code"] == 0 for w in pool["workers_stopped"]), pool["workers_stopped"]
    assert (
        metrics_broker.ctl("list_queues", "-q", "--no-table-headers", "name").strip() == ""
    )  # the run removed its queues


def test_two_pools_each_get_their_load_and_the_quiet_one_does_not_scale(
    tmp_path: Path, seeded: tuple[Path, Path], metrics_broker: RabbitNode
) -> None:
    models_dir, gallery_dir = seeded
    out = tmp_path / "report"
    # Compressed x0.2: `lite` 2/s for 2 s, 6/s for 8 s, 2/s for 2 s (56 jobs); `big` 1/s for 12 s
    # (12 jobs), which one worker at 300 ms per job keeps near an empty queue.
    loads = parse_pools(
        [
            "lite=step:base=2,high=6,at_s=10,hold_s=40,tail_s=10,service_ms=300",
            "big=steady:rate=1,duration_s=60,service_ms=300",
        ]
    )
    summary = runner.run_local(
        runner.LocalRun(
            out_dir=out,
            pools=loads,
            time_scale=0.2,
            settle_s=2,
            models_dir=models_dir,
            gallery_dir=gallery_dir,
            work_dir=tmp_path / "work",
            broker_url=metrics_broker.url,
            rabbitmq_metrics=metrics_broker.metrics_address,
        )
    )
    assert summary.lost == 0
    assert (summary.pools["lite"].submitted, summary.pools["big"].submitted) == (56, 12)
    assert summary.accepted == summary.succeeded == 68
    lite, big = summary.verdicts
    assert (lite.pool, big.pool) == ("lite", "big")
    assert not big.scaled_up and big.on_own_backlog, big
    assert lite.on_own_backlog, lite
    assert summary.independent is True
    _, samples = read_csv(out / "samples.csv")
    assert {s["pool"] for s in samples} == {"lite", "big"}
    assert max(float(s["backlog"]) for s in samples if s["pool"] == "lite") > 0  # each queue seen
    _, jobs = read_csv(out / "jobs.csv")
    assert sorted({(j["pool"], j["status"]) for j in jobs}) == [("big", "succeeded"), ("lite", "succeeded")]
    run = json.loads((out / "run.json").read_text())
    assert {name: p["model"] for name, p in run["pools"].items()} == {
        "lite": "synthetic_sleep_lite",
        "big": "synthetic_sleep_big",
    }
    assert run["pools"]["lite"]["queue"] != run["pools"]["big"]["queue"]
    text = (out / "summary.md").read_text()
    assert "**Verdict: each pool scaled on its own backlog.**" in text
    assert "| measure | pool `lite` | pool `big` |" in text
    assert metrics_broker.ctl("list_queues", "-q", "--no-table-headers", "name").strip() == ""
