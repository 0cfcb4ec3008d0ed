"""The computations behind a queued job's estimated wait and the operator view."""

from __future__ import annotations

from datetime import timedelta

import pytest

from classifier_common.config import Settings
from classifier_common.domain import JobStatus, utcnow
from classifier_common.queue_stats import (
    busy_seconds,
    busy_throughput,
    estimated_wait,
    percentile,
    pool_for_model,
    pools,
)
from classifier_common.store import FinishedJob

T0 = utcnow()


def finished(start_s: float | None, end_s: float) -> FinishedJob:
    return FinishedJob(
        model="m",
        status=JobStatus.succeeded,
        error_code=None,
        created_at=T0,
        started_at=None if start_s is None else T0 + timedelta(seconds=start_s),
        finished_at=T0 + timedelta(seconds=end_s),
    )


def test_busy_time_is_the_union_of_the_running_spans() -> None:
    # Two workers overlapping (0-4 and 2-6), a gap, then a batch of three run together (10-12).
    jobs = [finished(0, 4), finished(2, 6), finished(10, 12), finished(10, 12), finished(10, 12)]
    assert busy_seconds(jobs) == 8.0
    assert busy_throughput(jobs) == pytest.approx(5 / 8)
    assert busy_seconds([finished(3, 5), finished(0, 10)]) == 10.0  # one span inside another
    assert busy_seconds([finished(None, 5)]) == 0.0  # failed before any worker started it


def test_too_few_jobs_say_nothing_and_instant_ones_are_bounded() -> None:
    assert busy_throughput([finished(0, 1), finished(1, 2)]) is None
    assert busy_throughput([finished(1, 1)] * 3) == 1000.0  # cached answers: 1 ms each at most


def test_estimated_wait_counts_the_job_itself() -> None:
    assert estimated_wait(0, 2.0) == 0.5
    assert estimated_wait(12, 1.5) == 8.7
    assert estimated_wait(3, None) is None


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.95) == 95.0
    assert percentile(values, 0.5) == 50.0
    assert percentile([7.0], 0.95) == 7.0
    assert percentile([], 0.95) is None


def test_the_pools_are_the_settings_worker_pools() -> None:
    (pool,) = pools(Settings(queue_name="q", models=[]))
    assert (pool.name, pool.queue, pool.models) == ("default", "q.default", None)
    assert pool_for_model(Settings(queue_name="q"), "anything") == pool
    limited = Settings(queue_name="q", models=["a", "b"])
    assert pool_for_model(limited, "a").models == frozenset({"a", "b"})
    assert pool_for_model(limited, "c") is None
    two = Settings(queue_name="q", pools="lite=efficientnet_lite0,efficientnet_lite1;big=efficientnet_lite2")
    assert [(p.name, p.queue) for p in pools(two)] == [("lite", "q.lite"), ("big", "q.big")]
    assert pool_for_model(two, "efficientnet_lite2").name == "big"  # type: ignore[union-attr]
    assert pool_for_model(two, "resnet18") is None


def test_a_window_cut_at_the_limit_rates_over_the_span_read(tmp_path, monkeypatch) -> None:
    from classifier_common import queue_stats
    from classifier_common.store.sqlite import SqliteJobStore
    from tests.utils.queue_system import worked

    store = SqliteJobStore(tmp_path / "jobs.db")
    worked(store, 60, over_s=60.0)  # 1 job/s for the last minute
    monkeypatch.setattr(queue_stats, "FINISHED_LIMIT", 30)  # the newest 30: the last 30 s
    (pool,) = queue_stats.QueueStats(Settings(models_dir=tmp_path), store).stats(None, 300).pools
    store.close()
    assert pool.finished == 30
    assert pool.jobs_per_s == pytest.approx(1.0, rel=0.1)  # not 30 / 300
