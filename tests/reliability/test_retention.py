"""Retention: finished jobs are deleted once older than CLASSIFIER_RETENTION_S, by the results
service's purger (SQLite; MongoDB does it with a TTL index). Through the real results app and its
purge loop, with the shortest retention the settings allow (60 s) and jobs that finished long
before it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from fastapi.testclient import TestClient

from classifier_common.config import Settings
from classifier_common.domain import JobStatus, utcnow
from classifier_common.store import JobStore, open_store
from classifier_results.main import create_app
from tests.reliability.accounting import wait_until
from tests.utils.jobs import GOLDFINCH_RESULT, queued_job

RETENTION_S = 60


def _job(store: JobStore, *, age_s: float, finish: bool) -> str:
    created = utcnow() - timedelta(seconds=age_s)
    job = queued_job(created)
    store.create(job)
    if finish:
        store.start(job.id, created)
        assert store.finish(job.id, GOLDFINCH_RESULT, created)
    return job.id


def test_finished_jobs_expire_after_the_retention(tmp_path: Path) -> None:
    settings = Settings(
        store_url=f"sqlite:///{tmp_path}/jobs.db", retention_s=RETENTION_S, purge_interval_s=1, log_format="text"
    )
    store = open_store(settings.store_url)
    expired = _job(store, age_s=2 * RETENTION_S, finish=True)
    recent = _job(store, age_s=RETENTION_S / 2, finish=True)
    old_but_queued = _job(store, age_s=2 * RETENTION_S, finish=False)  # never purged: not finished
    assert store.get(expired).status is JobStatus.succeeded

    with TestClient(create_app(settings)) as client:
        wait_until(lambda: client.get(f"/v1/jobs/{expired}").status_code == 404, 10, "the purge")
        assert client.get(f"/v1/jobs/{recent}").json()["status"] == "succeeded"
        assert client.get(f"/v1/jobs/{old_but_queued}").json()["status"] == "queued"
    assert store.get(expired) is None and store.get(recent) is not None
