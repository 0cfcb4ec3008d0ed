"""bench.worker_images' table: one row per image, runtime and model set, medians of the runs
(the runs themselves start containers: docs/performance.md, "The ONNX-only worker image")."""

from __future__ import annotations

from bench.worker_images import MODEL_SETS, Case, table


def test_the_table_gives_each_configuration_its_medians() -> None:
    cases = [
        Case(
            "classifier-worker:1-onnx", "onnxruntime", MODEL_SETS[0], starts_s=[1.0, 0.9, 1.2], rss_mb=[129, 130, 128]
        ),
        Case("classifier-worker:1", "auto", MODEL_SETS[1], starts_s=[13.1, 13.0, 13.3], rss_mb=[415, 410, 420]),
    ]
    rows = table(cases, {"classifier-worker:1-onnx": 599.2, "classifier-worker:1": 1573.9}).splitlines()
    assert rows[2] == (
        "| classifier-worker:1-onnx | onnxruntime | 599 MB | 1 (lite0) | 1.0 s | 1.0, 0.9, 1.2 s | 129 MiB |"
    )
    assert rows[3].startswith("| classifier-worker:1 | auto | 1574 MB | 3 (lite0,lite1,lite2) | 13.1 s |")
    assert rows[3].endswith("| 415 MiB |")
