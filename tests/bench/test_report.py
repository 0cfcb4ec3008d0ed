"""bench.report turns one run's rows into verdicts: each target a ratio or difference of rows of
that run, n/a when a row it needs did not run, information rows never a verdict."""

from __future__ import annotations

from pathlib import Path

from bench import report
from bench.scenarios import Row


def _row(key: str, images_per_s: float | None = None, *, p50: float = 10.0, p95: float = 20.0, **kw) -> Row:
    return Row(key, f"row {key}", clients=1, images_per_s=images_per_s, p50_ms=p50, p95_ms=p95, **kw)


def _process(name: str, cpu_ms: float, peak_mb: float | None = 100.0) -> dict:
    return {"name": name, "cpu_ms_per_image": cpu_ms, "rss_mb": peak_mb, "peak_rss_mb": peak_mb}


def _run(**overrides: Row) -> dict[str, Row]:
    """A run that meets every target; ``overrides`` replace rows by key."""
    system = [
        _process("gateway", 2.0),
        _process("results", 1.0),
        _process("worker-0", 6.0, 420.0),
        _process("worker-1", 6.0, 430.0),
        _process("rabbitmq (shared)", 1.5),
        _process("client", 0.7),
    ]
    floor = [_process(name, ms, None) for name, ms in (("http server", 2.0), ("http client", 0.5), ("rabbitmq", 1.5))]
    rows = {
        "1": _row("1", 100.0),
        "6": _row("6", 280.0),
        "6q": _row("6q", 400.0),
        "2-fp32": _row("2-fp32", 90.0),
        "2": _row("2", 200.0, p50=9.0),
        "2-c1": _row("2-c1", 105.0, p50=9.0),
        "3-c1": _row("3-c1", 55.0, p50=18.0),
        "3-sat": _row("3-sat", 140.0, p95=150.0, processes=system),
        "floor": Row("floor", "floor", cpu_ms_per_image=4.0, processes=floor),
        "floor-rate": Row("floor-rate", "floor at the rate", images_per_s=140.0, cpu_ms_per_image=5.0, processes=floor),
        "gw-json": _row("gw-json", 600.0),
        "4-sat": _row("4-sat", 30.0, p95=700.0),
        "4w-sat": _row("4w-sat", 50.0, p95=400.0),
        "5-sat": _row("5-sat", 75.0, p95=280.0),
        "7-sat": _row("7-sat", 100.0, p95=170.0),
    }
    rows.update(overrides)
    return rows


def _verdicts(rows: dict[str, Row], models: int = 1) -> dict[str, report.Target]:
    return {target.key: target for target in report.targets(rows, models=models)}


def test_a_run_that_meets_every_target_passes_each() -> None:
    checks = _verdicts(_run())
    assert {key for key, target in checks.items() if target.verdict == "PASS"} == {
        "auto_vs_fp32_worker",
        "preprocess_vs_forward",
        "system_vs_naive",
        "system_vs_naive_p95",
        "system_vs_celery",
        "system_vs_celery_p95",
        "system_vs_bentoml",
        "outside_workers_vs_floor",
        "added_latency",
        "worker_rss",
        "gateway_submissions",
    }
    information = {key for key, target in checks.items() if target.passed is None}
    assert information == {
        "auto_vs_onnxruntime_hot_loop",
        "auto_vs_int8_hot_loop",
        "system_vs_inprocess",
        "onnxruntime_vs_torch_forward",
        "system_vs_naive_worker_code",
        "celery_vs_system_cpu",
        "outside_workers_vs_floor_at_rate",
    }
    assert checks["auto_vs_fp32_worker"].value == 200.0 / 90.0
    assert checks["auto_vs_onnxruntime_hot_loop"].value == 200.0 / 280.0
    assert checks["auto_vs_int8_hot_loop"].value == 200.0 / 400.0
    assert checks["system_vs_bentoml"].value == 140.0 / 75.0
    # gateway 2 + results 1 + RabbitMQ 1.5 + client 0.7 against the floor's 4 ms: the workers are not counted.
    assert checks["outside_workers_vs_floor"].value == (2.0 + 1.0 + 1.5 + 0.7) / 4.0
    # The same against the floor's parts driven at the system's rate: information, no verdict.
    assert checks["outside_workers_vs_floor_at_rate"].value == (2.0 + 1.0 + 1.5 + 0.7) / 5.0


def test_the_retired_system_vs_inprocess_target_is_information_only() -> None:
    checks = _verdicts(_run(**{"3-sat": _row("3-sat", 50.0, p95=150.0)}))
    assert checks["system_vs_inprocess"].value == 0.25
    assert checks["system_vs_inprocess"].verdict == "n/a"


def test_each_new_target_misses_on_its_own_bad_row() -> None:
    slow_auto = _verdicts(_run(**{"2-fp32": _row("2-fp32", 150.0)}))
    assert slow_auto["auto_vs_fp32_worker"].verdict == "MISS"
    close_to_celery = _verdicts(_run(**{"7-sat": _row("7-sat", 120.0, p95=140.0)}))
    assert close_to_celery["system_vs_celery"].verdict == "MISS"
    assert close_to_celery["system_vs_celery_p95"].verdict == "MISS"
    close_to_bentoml = _verdicts(_run(**{"5-sat": _row("5-sat", 110.0)}))
    assert close_to_bentoml["system_vs_bentoml"].verdict == "MISS"
    low_floor = _verdicts(_run(floor=Row("floor", "floor", cpu_ms_per_image=3.0)))
    assert low_floor["outside_workers_vs_floor"].value == 5.2 / 3.0
    assert low_floor["outside_workers_vs_floor"].verdict == "MISS"


def test_cpu_per_job_against_celery_is_shown_beside_the_throughput_ratio() -> None:
    # On a shared machine the throughput ratio can pass while Celery spends less CPU per job.
    rows = _run(
        **{
            "3-sat": _row("3-sat", 140.0, p95=150.0, cpu_ms_per_image=20.0),
            "7-sat": _row("7-sat", 70.0, p95=170.0, cpu_ms_per_image=18.0),
        }
    )
    checks = _verdicts(rows)
    assert checks["system_vs_celery"].verdict == "PASS"
    assert checks["celery_vs_system_cpu"].value == 18.0 / 20.0
    assert checks["celery_vs_system_cpu"].verdict == "n/a"


def test_worker_memory_is_per_loaded_model() -> None:
    heavy = [_process("worker-0", 6.0, 900.0), _process("gateway", 2.0)]
    rows = _run(**{"3-sat": _row("3-sat", 140.0, p95=150.0, processes=heavy)})
    assert _verdicts(rows, models=1)["worker_rss"].verdict == "MISS"
    assert _verdicts(rows, models=2)["worker_rss"].value == 450.0
    assert _verdicts(rows, models=2)["worker_rss"].verdict == "PASS"


def test_a_target_whose_rows_did_not_run_is_not_applicable() -> None:
    rows = _run()
    for key in ("7-sat", "5-sat", "floor", "floor-rate", "2-fp32"):
        rows[key] = Row(key, key, not_run="smoke run")
    checks = _verdicts(rows)
    for key in (
        "system_vs_celery",
        "system_vs_celery_p95",
        "system_vs_bentoml",
        "outside_workers_vs_floor",
        "outside_workers_vs_floor_at_rate",
    ):
        assert checks[key].verdict == "n/a", key
    assert checks["auto_vs_fp32_worker"].verdict == "n/a"


def test_the_floor_row_shows_its_parts_cpu_in_both_tables(tmp_path: Path) -> None:
    rows = _run()
    ordered = list(rows.values())
    checks = report.targets(rows)
    meta = {
        "torch": "2", "cpu_model": "cpu", "cores": 2, "memory_gib": 8, "python": "3.11", "model": "m",
        "torch_threads": 1, "workers": 2, "images": 41, "duration_s": 20, "warmup_s": 3,
        "loadavg_before": "0.1 0.1 0.1", "when": "now", "commit": "abc",
    }  # fmt: skip
    _, md_path = report.write(tmp_path, meta, ordered, checks)
    markdown = md_path.read_text()
    parts = "http server 2.00 ms CPU, http client 0.50 ms CPU, rabbitmq 1.50 ms CPU"
    assert f"| floor | floor |  | - | - | - | 4.0 | {parts} |" in markdown
    assert "| (3) CPU ms per job outside the workers / floor | 1.30 | <= 1.5 | **PASS** |" in markdown
    assert f"| floor-rate | floor at the rate |  | 140.0 | - | - | 5.0 | {parts} |" in markdown
    rate_line = "| (3) CPU ms per job outside the workers / floor at 3-sat's rate (information) | 1.04 |"
    assert rate_line in markdown
    assert "| (3) saturated / (2) images/s | 0.70 | none: was >= 0.85 | **n/a** |" in markdown
    assert "http server 2.00 ms CPU" in report.text_table(ordered, checks)
