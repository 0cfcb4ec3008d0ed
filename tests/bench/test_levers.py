"""The performance levers that changed code keep doing what they were kept for
(docs/performance.md has their numbers):

- the worker answers with torchvision's ImageNet category names without importing torchvision
  (~165 MB less memory per worker);
- long-poll: one poller per results process asks the store which awaited jobs finished
  (``JobStore.finished_among``) and wakes just those requests, instead of each request re-reading
  its job every 50 ms; while the store says nothing was committed and no request started
  waiting, it does not even query.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import mongomock
import pytest
from fastapi.testclient import TestClient

from classifier_common.config import Settings
from classifier_common.domain import Job, JobError, JobResult, JobStatus, Prediction, new_job_id, utcnow
from classifier_common.store.base import JobStore
from classifier_common.store.mongo import MongoJobStore
from classifier_common.store.sqlite import SqliteJobStore
from classifier_results.main import create_app
from classifier_results.waiter import JobWaiter
from classifier_worker.models import imagenet_categories


def test_category_names_are_torchvisions() -> None:
    from torchvision.models import ResNet18_Weights

    assert imagenet_categories() == tuple(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


def test_a_worker_classifies_without_importing_torchvision(seeded: tuple[Path, Path]) -> None:
    models_dir, gallery_dir = seeded
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from classifier_common.catalog import get_spec\n"
        "import classifier_worker.__main__, classifier_worker.worker, classifier_worker.processor\n"
        "from classifier_worker.models import LoadedModel\n"
        "from classifier_worker.preprocess import decode\n"
        f"model = LoadedModel.load(get_spec('efficientnet_lite0'), Path({str(models_dir)!r}))\n"
        f"data = Path({str(gallery_dir)!r}, 'n01531178_goldfinch.JPEG').read_bytes()\n"
        "top = model.predict([decode(data, model.spec)])[0][0]\n"
        "print(top.label, 'torchvision' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["goldfinch", "False"]


def _job(status: JobStatus = JobStatus.queued) -> Job:
    return Job(
        id=new_job_id(),
        status=status,
        model="efficientnet_lite0",
        image="x.jpeg",
        source="upload",
        image_sha256="0" * 64,
        created_at=utcnow(),
    )


RESULT = JobResult(predictions=[Prediction(label="goldfinch", class_index=11, score=0.9)], model_version="1-test")


@pytest.fixture(params=["sqlite", "mongo-mongomock"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[JobStore]:
    if request.param == "sqlite":
        opened: JobStore = SqliteJobStore(tmp_path / "jobs.db")
    else:
        opened = MongoJobStore("mongodb://mongomock/classifier_test", client=mongomock.MongoClient())
    yield opened
    opened.close()


def test_finished_among_names_finished_and_missing_jobs(store: JobStore) -> None:
    queued, running, succeeded, failed, canceled = (store.create(_job()) for _ in range(5))
    store.start(running.id, utcnow())
    store.start(succeeded.id, utcnow())
    store.finish(succeeded.id, RESULT, utcnow())
    store.fail(failed.id, JobError(code="x", message="y"), utcnow())
    store.cancel(canceled.id, utcnow())
    missing = new_job_id()
    ids = [queued.id, running.id, succeeded.id, failed.id, canceled.id, missing]
    assert store.finished_among(ids) == {succeeded.id, failed.id, canceled.id, missing}
    assert store.finished_among([]) == set()


def test_finished_among_handles_more_ids_than_one_query_takes(store: JobStore) -> None:
    jobs = [store.create(_job()) for _ in range(3)]
    store.finish(jobs[1].id, RESULT, utcnow())
    unknown = [new_job_id() for _ in range(1200)]
    ids = unknown[:600] + [j.id for j in jobs] + unknown[600:]
    assert store.finished_among(ids) == {jobs[1].id, *unknown}


@pytest.fixture
def results(tmp_path: Path) -> Iterator[tuple[TestClient, SqliteJobStore]]:
    settings = Settings(store_url=f"sqlite:///{tmp_path}/jobs.db", log_format="text")
    app = create_app(settings)
    with TestClient(app) as client:
        yield client, app.state.store


def _finish_later(store: JobStore, job_id: str, delay_s: float) -> threading.Thread:
    def finish() -> None:
        time.sleep(delay_s)
        store.start(job_id, utcnow())
        store.finish(job_id, RESULT, utcnow())

    thread = threading.Thread(target=finish)
    thread.start()
    return thread


def test_long_poll_answers_as_soon_as_the_job_finishes(results: tuple[TestClient, SqliteJobStore]) -> None:
    client, store = results
    jobs = [store.create(_job()) for _ in range(5)]
    answers: dict[str, tuple[float, dict]] = {}

    def poll(job_id: str) -> None:
        started = time.monotonic()
        response = client.get(f"/v1/jobs/{job_id}", params={"wait": 10})
        assert response.status_code == 200, response.text
        answers[job_id] = (time.monotonic() - started, response.json())

    pollers = [threading.Thread(target=poll, args=(job.id,)) for job in jobs[:4]]
    for thread in pollers:
        thread.start()
    finishers = [_finish_later(store, job.id, 0.3 + 0.1 * i) for i, job in enumerate(jobs[:4])]
    for thread in pollers + finishers:
        thread.join(30)
    for job in jobs[:4]:
        waited, body = answers[job.id]
        assert body["status"] == "succeeded"
        assert body["result"]["predictions"][0]["label"] == "goldfinch"
        assert waited < 5, f"answered after {waited:.2f} s of a 10 s wait: the finish was not noticed"
    # A job that does not finish is answered as it is when the wait runs out.
    started = time.monotonic()
    response = client.get(f"/v1/jobs/{jobs[4].id}", params={"wait": 0.5})
    assert response.status_code == 200 and response.json()["status"] == "queued"
    assert time.monotonic() - started >= 0.5


def test_long_poll_on_a_job_deleted_meanwhile_is_404(results: tuple[TestClient, SqliteJobStore]) -> None:
    client, store = results
    job = store.create(_job())

    def delete_later() -> None:
        time.sleep(0.3)
        store.delete(job.id)

    thread = threading.Thread(target=delete_later)
    thread.start()
    started = time.monotonic()
    response = client.get(f"/v1/jobs/{job.id}", params={"wait": 10})
    thread.join()
    assert response.status_code == 404, response.text
    assert time.monotonic() - started < 5


class _CountingStore:
    """A real SQLite store that counts the poller's queries."""

    def __init__(self, store: SqliteJobStore):
        self.store = store
        self.queries = 0

    def change_counter(self) -> int | None:
        return self.store.change_counter()

    def finished_among(self, job_ids: list[str]) -> set[str]:
        self.queries += 1
        return self.store.finished_among(job_ids)

    def get(self, job_id: str) -> Job | None:
        return self.store.get(job_id)


def test_long_poll_does_not_query_while_nothing_changes(tmp_path: Path) -> None:
    store = SqliteJobStore(tmp_path / "jobs.db")
    counting = _CountingStore(store)
    waiter = JobWaiter(counting, tick_s=0.002)  # type: ignore[arg-type]
    idle, finishing = store.create(_job()), store.create(_job())

    async def scenario() -> tuple[Job | None, int, float]:
        # One request waits 0.5 s on a job nobody touches: ~250 ticks, almost none query.
        assert await waiter.wait(idle.id, 0.5) is None
        queries_while_idle = counting.queries
        # A commit elsewhere is still seen within ticks.
        finisher = _finish_later(store, finishing.id, 0.2)
        started = time.monotonic()
        job = await waiter.wait(finishing.id, 5)
        waited = time.monotonic() - started
        finisher.join()
        return job, queries_while_idle, waited

    job, queries_while_idle, waited = asyncio.run(scenario())
    assert queries_while_idle <= 3, f"{queries_while_idle} queries while nothing changed"
    assert job is not None and job.status is JobStatus.succeeded and waited < 2


def test_long_poll_sees_a_job_that_finished_before_its_request_waited(tmp_path: Path) -> None:
    """The job finishes after the poller's last query but before the request starts waiting, so
    the change counter has nothing new to say: a new waiter alone must make the poller query."""
    store = SqliteJobStore(tmp_path / "jobs.db")
    counting = _CountingStore(store)
    waiter = JobWaiter(counting, tick_s=0.002)  # type: ignore[arg-type]
    other, job = store.create(_job()), store.create(_job())

    async def scenario() -> tuple[Job | None, float]:
        background = asyncio.ensure_future(waiter.wait(other.id, 5))  # keeps the poller ticking
        await asyncio.sleep(0.05)
        await asyncio.to_thread(lambda: (store.start(job.id, utcnow()), store.finish(job.id, RESULT, utcnow())))
        queries = counting.queries
        while counting.queries == queries:  # the poller has queried after the commit
            await asyncio.sleep(0.002)
        await asyncio.sleep(0.02)
        started = time.monotonic()
        finished = await waiter.wait(job.id, 2)
        waited = time.monotonic() - started
        background.cancel()
        return finished, waited

    finished, waited = asyncio.run(scenario())
    assert finished is not None and finished.status is JobStatus.succeeded
    assert waited < 1, f"answered after {waited:.2f} s: the new waiter was not checked"
