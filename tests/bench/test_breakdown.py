"""python -m bench.breakdown runs against a real stack and splits a lone job's latency into parts
that add up. Structure only: no timing is asserted."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.utils.modules import run_module

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]


def test_breakdown_prints_every_part(seeded: tuple[Path, Path], repo: Path) -> None:
    models_dir, gallery_dir = seeded
    stdout = run_module(
        repo, "bench.breakdown", "--jobs", "3", "--workers", "1",
        "--models-dir", str(models_dir), "--gallery-dir", str(gallery_dir),
        "--set", "CLASSIFIER_RUNTIME=torch",  # no start-up check of the runtimes: structure only
    )  # fmt: skip
    rows = {
        line.split()[0]: [float(v) for v in line.split()[1:]]
        for line in stdout.splitlines()
        if line.split() and line.split()[0] in ("post", "record_to_start", "worker", "finish_to_answer", "total")
    }
    assert set(rows) == {"post", "record_to_start", "worker", "finish_to_answer", "total"}, stdout
    p50 = {name: values[0] for name, values in rows.items()}
    assert p50["post"] > 0 and p50["worker"] > 0 and p50["total"] > 0
    # Each part happens inside what the client waited, job by job; so (order statistics keep a
    # job-by-job <=) each part's median is at most the total's. Medians of parts do not add up.
    for part in ("post", "record_to_start", "worker", "finish_to_answer"):
        assert p50[part] <= p50["total"], (part, p50)
