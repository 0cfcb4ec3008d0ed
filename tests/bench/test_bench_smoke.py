"""The benchmark harness runs end to end (bench --smoke: a few images, about a second per row) and
writes a complete report. Structure only: timing is the benchmark's business, never a test's."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bench.scenarios import Row, pooled
from tests.utils.modules import run_module

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]

RUN_ROWS = {
    "1",
    "6",
    "6q",
    "2-fp32",
    "2",
    "2-c1",
    "3-c1",
    "3-sat",
    "3-hit",
    "gw-json",
    "gw-upload",
    "4-c1",
    "4-sat",
    "4w-c1",
    "4w-sat",
}
SKIPPED_ROWS = {"5-c1", "5-sat", "7-c1", "7-sat"}  # BentoML and Celery are not part of the smoke run
TARGETS = {
    "auto_vs_fp32_worker",
    "preprocess_vs_forward",
    "outside_workers_vs_floor",
    "system_vs_naive",
    "system_vs_naive_p95",
    "added_latency",
    "worker_rss",
    "gateway_submissions",
}
# Computed and shown for information; not a target the report judges.
INFORMATION = {
    "system_vs_naive_worker_code",
    "onnxruntime_vs_torch_forward",
    "auto_vs_onnxruntime_hot_loop",
    "auto_vs_int8_hot_loop",
    "system_vs_inprocess",
    "outside_workers_vs_floor_at_rate",
}
NOT_RUN_TARGETS = {
    "system_vs_celery",
    "system_vs_celery_p95",
    "celery_vs_system_cpu",
    "system_vs_bentoml",
}  # on rows the smoke run leaves out


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory, seeded: tuple[Path, Path], repo: Path) -> tuple[dict, str]:
    models_dir, gallery_dir = seeded
    out = tmp_path_factory.mktemp("bench")
    stdout = run_module(
        repo, "bench", "--smoke", "--images", "2", "--warmup", "0.2", "--duration", "1",
        "--models-dir", str(models_dir), "--gallery-dir", str(gallery_dir), "--out", str(out),
        timeout=480,  # a dozen processes that import torch start, on 2 cores other work shares
    )  # fmt: skip
    assert "PASS" in stdout or "MISS" in stdout, stdout[-3000:]
    return json.loads((out / "latest.json").read_text()), (out / "latest.md").read_text()


def test_every_scenario_ran_and_measured_something(report: tuple[dict, str]) -> None:
    data, _ = report
    rows = {row["key"]: row for row in data["rows"]}
    assert set(rows) == RUN_ROWS | SKIPPED_ROWS | {"floor", "floor-rate"}
    # The floor: bench.floor's parts, each its CPU per job, summed; saturated, and at 3-sat's rate.
    for key in ("floor", "floor-rate"):
        parts = {p["name"]: p["cpu_ms_per_image"] for p in rows[key]["processes"]}
        assert set(parts) == {"http server", "http client", "broker clients", "rabbitmq", "store"}
        assert all(ms > 0 for ms in parts.values()), parts
        assert rows[key]["cpu_ms_per_image"] == pytest.approx(sum(parts.values()))
    # Each slice of floor-rate was driven at what 3-sat reached in the slice before it.
    rates = re.search(r"; driven at ([0-9., ]+) jobs/s", rows["floor-rate"]["note"])
    assert rates, rows["floor-rate"]["note"]
    slices = [float(rate) for rate in rates.group(1).split(", ")]
    assert len(slices) == 2
    assert sum(slices) / 2 == pytest.approx(rows["3-sat"]["images_per_s"], abs=0.1)
    for key in RUN_ROWS:
        row = rows[key]
        assert row["not_run"] is None, row
        assert row["errors"] == 0, row
        assert row["completed"] > 0, row
        assert row["images_per_s"] > 0, row
        assert 0 < row["p50_ms"] <= row["p95_ms"], row
        assert row["cpu_ms_per_image"] > 0, row
        assert row["processes"] and all(p["peak_rss_mb"] > 0 for p in row["processes"]), row
    for key in SKIPPED_ROWS:
        assert rows[key]["not_run"], rows[key]


def test_system_rows_measure_every_process(report: tuple[dict, str]) -> None:
    data, _ = report
    rows = {row["key"]: row for row in data["rows"]}
    names = {p["name"] for p in rows["3-sat"]["processes"]}
    assert {"gateway", "results", "worker-0", "client"} <= names
    # With the workers stopped only the gateway side is left.
    assert not any(name.startswith("worker") for name in (p["name"] for p in rows["gw-json"]["processes"]))


def test_the_compared_rows_are_measured_interleaved(report: tuple[dict, str]) -> None:
    data, markdown = report
    rows = {row["key"]: row for row in data["rows"]}
    assert [row["key"] for row in data["rows"]][:7] == ["1", "6", "6q", "2-fp32", "2", "2-c1", "3-c1"]
    for key, others in (("2-c1", "row 3-c1"), ("3-c1", "row 2-c1")):
        assert f"2 slices of 0.5 s alternating with {others}" in rows[key]["note"], rows[key]
    # The floor alternates with the saturated row it is compared with (and (2), as that row does).
    for key, others in (
        ("2", "rows 3-sat, floor, floor-rate"),
        ("3-sat", "rows 2, floor, floor-rate"),
        ("floor", "rows 2, 3-sat, floor-rate"),
        ("floor-rate", "rows 2, 3-sat, floor"),
    ):
        assert f"2 slices of 0.5 s alternating with {others}" in rows[key]["note"], rows[key]
    assert "(2), 3-sat and the floor (saturated, and at 3-sat's rate) in 2 alternating slices" in markdown
    assert "latencies_s" not in rows["3-c1"]


def test_every_target_has_a_verdict(report: tuple[dict, str]) -> None:
    data, markdown = report
    targets = {t["key"]: t for t in data["targets"]}
    assert set(targets) == TARGETS | INFORMATION | NOT_RUN_TARGETS
    for key in NOT_RUN_TARGETS:
        assert targets.pop(key)["verdict"] == "n/a"
    for target in targets.values():
        assert target["verdict"] in (("n/a",) if target["key"] in INFORMATION else ("PASS", "MISS")), target
        assert target["value"] is not None
    for key in ("cpu_model", "cores", "torch", "torch_build", "torch_python", "torch_threads", "loadavg_before"):
        assert data["meta"][key], key
    assert f"torch {data['meta']['torch']} ({data['meta']['torch_build']} build" in markdown
    assert "| target | value | goal | verdict |" in markdown
    assert "not run: smoke run" in markdown


def test_pooled_slices_weigh_every_image_alike() -> None:
    def piece(completed: int, window_s: float, cpu_ms: float, images: int, peak: float, latency_s: float) -> Row:
        row = Row("3-c1", "x", clients=1, completed=completed, images_per_s=completed / window_s)
        row.latencies_s, row.cpu_images, row.cpu_ms_per_image = [latency_s] * completed, images, cpu_ms
        row.foreign_cpu_s = 0.5
        row.processes = [{"name": "worker-0", "cpu_ms_per_image": cpu_ms, "rss_mb": peak - 1, "peak_rss_mb": peak}]
        return row

    row = pooled([piece(30, 1.0, 10.0, 40, 300, 0.02), piece(10, 1.0, 30.0, 10, 310, 0.05)], "two slices")
    assert row.completed == 40 and row.images_per_s == pytest.approx(20.0)  # 40 images in 2 s
    assert row.cpu_ms_per_image == pytest.approx((10 * 40 + 30 * 10) / 50)
    (worker,) = row.processes
    assert worker == {"name": "worker-0", "cpu_ms_per_image": pytest.approx(14.0), "rss_mb": 309, "peak_rss_mb": 310}
    assert row.p50_ms == pytest.approx(20.0) and row.p95_ms == pytest.approx(50.0)
    assert row.foreign_cpu_s == pytest.approx(1.0) and row.note == "two slices"


def test_without_the_system_rows_nothing_is_interleaved(tmp_path: Path, seeded: tuple[Path, Path], repo: Path) -> None:
    models_dir, gallery_dir = seeded
    run_module(
        repo, "bench", "--smoke", "--only", "inprocess", "--images", "2", "--warmup", "0.2", "--duration", "0.5",
        "--models-dir", str(models_dir), "--gallery-dir", str(gallery_dir), "--out", str(tmp_path),
    )  # fmt: skip
    data = json.loads((tmp_path / "latest.json").read_text())
    assert [row["key"] for row in data["rows"]] == ["1", "6", "6q", "2-fp32", "2", "2-c1"]
    assert data["meta"]["slices"] is None
    assert not any("slices" in row["note"] for row in data["rows"])
    assert "alternating" not in (tmp_path / "latest.md").read_text()
