"""The fate of each delivery, with the in-process broker and a real SQLite store: what is acked,
requeued, dead-lettered, and what the store says afterwards."""

from __future__ import annotations

import io
import logging
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from classifier_common.broker.memory import MemoryBroker, MemoryConsumer
from classifier_common.catalog import get_spec
from classifier_common.domain import Job, JobStatus, utcnow
from classifier_common.images import sha256
from classifier_common.messages import JobMessage
from classifier_common.store import JobStore, open_store
from classifier_worker.models import LoadedModel
from classifier_worker.processor import Processor
from tests.utils.corrupt_images import bad_exif_images
from tests.utils.jobs import queued_job

GOLDFINCH = "n01531178_goldfinch.JPEG"
MAX_ATTEMPTS = 3


@pytest.fixture(scope="module")
def lite0(seeded: tuple[Path, Path]) -> LoadedModel:
    return LoadedModel.load(get_spec("efficientnet_lite0"), seeded[0])


@pytest.fixture
def store(tmp_path: Path) -> JobStore:
    return open_store(f"sqlite:///{tmp_path}/jobs.db")


@pytest.fixture
def broker() -> MemoryBroker:
    return MemoryBroker(max_length=100, max_attempts=MAX_ATTEMPTS + 1)


@pytest.fixture
def processor(store: JobStore, lite0: LoadedModel, seeded: tuple[Path, Path]) -> Processor:
    return Processor(store, {"efficientnet_lite0": lite0}, seeded[1], max_attempts=MAX_ATTEMPTS, result_cache=False)


def _submit(store: JobStore, broker: MemoryBroker, image: str = GOLDFINCH, upload: bytes | None = None) -> Job:
    job = queued_job(
        image=image,
        source="upload" if upload is not None else "gallery",
        image_sha256=sha256(upload or image.encode()),
    )
    store.create(job)
    broker.publish(JobMessage.for_job(job, upload).encode(), job.id)
    return job


def _deliver(processor: Processor, broker: MemoryBroker) -> list[str]:
    """Process what is queued as one batch; the ids of the jobs whose outcome it wrote."""
    consumer = MemoryConsumer(broker, prefetch=10)
    consumer.start()
    deliveries = []
    while (delivery := consumer.get(timeout=0)) is not None:
        deliveries.append(delivery)
    finished = processor.process(deliveries)
    consumer.close()
    return finished


def test_success_is_stored_then_acked(processor: Processor, store: JobStore, broker: MemoryBroker) -> None:
    job = _submit(store, broker)
    _deliver(processor, broker)
    stored = store.get(job.id)
    assert stored.status is JobStatus.succeeded and stored.result.predictions[0].label == "goldfinch"
    assert broker.ready_count == broker.unacked_count == 0 and not broker.dead


def test_poison_messages_are_dead_lettered(processor: Processor, broker: MemoryBroker) -> None:
    broker.publish(b"not json", "p1")
    broker.publish(b'{"v": 99, "job_id": "x"}', "p2")
    broker.publish(b'{"v": 1, "job_id": 5}', "p3")
    _deliver(processor, broker)
    assert [d.message_id for d in broker.dead] == ["p1", "p2", "p3"]
    assert all(d.reason == "rejected" for d in broker.dead)


def test_corrupt_upload_fails_the_job_and_is_not_requeued(
    processor: Processor, store: JobStore, broker: MemoryBroker
) -> None:
    job = _submit(store, broker, image="broken.jpg", upload=b"\xff\xd8\xff garbage")
    _deliver(processor, broker)
    stored = store.get(job.id)
    assert stored.status is JobStatus.failed and stored.error.code == "invalid_image"
    assert broker.ready_count == 0 and not broker.dead


def test_redelivered_finished_job_is_acked_without_running(
    processor: Processor, store: JobStore, broker: MemoryBroker
) -> None:
    job = _submit(store, broker)
    _deliver(processor, broker)
    finished = store.get(job.id)
    broker.publish(JobMessage.for_job(job).encode(), job.id)  # as if the ack was lost
    _deliver(processor, broker)
    assert store.get(job.id) == finished  # untouched: same attempts, same finished_at
    assert broker.ready_count == 0 and not broker.dead


def test_canceled_job_is_skipped(processor: Processor, store: JobStore, broker: MemoryBroker) -> None:
    job = _submit(store, broker)
    assert store.cancel(job.id, utcnow()).status is JobStatus.canceled
    _deliver(processor, broker)
    assert store.get(job.id).status is JobStatus.canceled and store.get(job.id).result is None


def test_job_whose_earlier_attempts_died_is_failed(processor: Processor, store: JobStore, broker: MemoryBroker) -> None:
    job = _submit(store, broker)
    for _ in range(MAX_ATTEMPTS):  # three workers took it and died before writing anything
        store.start(job.id, utcnow())
    _deliver(processor, broker)
    stored = store.get(job.id)
    assert stored.status is JobStatus.failed and stored.error.code == "too_many_attempts"
    assert stored.attempts == MAX_ATTEMPTS + 1


def test_store_outage_requeues(processor: Processor, store: JobStore, broker: MemoryBroker, monkeypatch) -> None:
    from classifier_common.errors import StoreUnavailable
    from classifier_worker import processor as processor_module

    job = _submit(store, broker)
    monkeypatch.setattr(processor_module, "STORE_RETRY_DELAY_S", 0)

    def down(*_: object) -> None:
        raise StoreUnavailable("database is locked")

    monkeypatch.setattr(store, "start", down)
    _deliver(processor, broker)
    assert broker.ready_count == 1 and not broker.dead  # given back, not lost
    monkeypatch.undo()
    _deliver(processor, broker)
    assert store.get(job.id).status is JobStatus.succeeded


def test_unknown_job_is_dropped(processor: Processor, broker: MemoryBroker) -> None:
    job_id = uuid.uuid4().hex
    message = JobMessage(
        job_id=job_id,
        model="efficientnet_lite0",
        image=GOLDFINCH,
        source="gallery",
        image_sha256="0",
        enqueued_at=utcnow(),
    )
    broker.publish(message.encode(), job_id)
    _deliver(processor, broker)
    assert broker.ready_count == 0 and not broker.dead


def test_upload_bytes_travel_in_the_message(
    processor: Processor, store: JobStore, broker: MemoryBroker, seeded
) -> None:
    data = (seeded[1] / "n07747607_orange.JPEG").read_bytes()
    job = _submit(store, broker, image="fruit.jpg", upload=data)
    body = broker._ready[0].body
    assert body.endswith(b"\n" + data)  # raw, after the JSON line: no base64
    _deliver(processor, broker)
    assert store.get(job.id).result.predictions[0].label == "orange"


def _submit_stored(store: JobStore, broker: MemoryBroker, data: bytes, image: str = "fruit.jpg") -> Job:
    """An upload submitted through the claim check: kept in the store, referenced by the message."""
    job = queued_job(image=image, source="upload", image_sha256=sha256(data))
    store.create(job)
    store.put_upload(job.id, data)
    broker.publish(JobMessage.for_job(job, upload_ref=job.id).encode(), job.id)
    return job


def test_a_stored_upload_is_read_from_the_store(
    processor: Processor, store: JobStore, broker: MemoryBroker, seeded
) -> None:
    data = (seeded[1] / "n07747607_orange.JPEG").read_bytes()
    job = _submit_stored(store, broker, data)
    assert data not in broker._ready[0].body
    assert _deliver(processor, broker) == [job.id]
    assert store.get(job.id).result.predictions[0].label == "orange"
    # Kept until the job's retention ends, not deleted when the job finishes.
    assert store.get_upload(job.id) == data


def test_a_missing_stored_upload_fails_that_job_alone(
    processor: Processor, store: JobStore, broker: MemoryBroker, seeded
) -> None:
    data = (seeded[1] / "n07747607_orange.JPEG").read_bytes()
    before = _submit(store, broker)
    lost = _submit_stored(store, broker, data)
    after = _submit_stored(store, broker, data, image="fruit2.jpg")
    store.delete_upload(lost.id)
    assert sorted(_deliver(processor, broker)) == sorted([before.id, lost.id, after.id])
    failed = store.get(lost.id)
    assert failed.status is JobStatus.failed
    assert failed.error.code == "upload_missing"
    assert "no longer in the job store" in failed.error.message
    assert store.get(before.id).status is JobStatus.succeeded
    assert store.get(after.id).result.predictions[0].label == "orange"
    assert len(broker._ready) == 0 and broker._unacked == {}


def test_the_jobs_given_an_outcome_are_the_ones_returned(
    processor: Processor, store: JobStore, broker: MemoryBroker
) -> None:
    """What the worker announces to the results services: succeeded and failed jobs, not the ones
    that were already finished (nothing new to say) or requeued."""
    good = _submit(store, broker)
    broken = _submit(store, broker, image="broken.jpg", upload=b"\xff\xd8\xff garbage")
    canceled = _submit(store, broker)
    store.cancel(canceled.id, utcnow())
    assert sorted(_deliver(processor, broker)) == sorted([good.id, broken.id])
    broker.publish(JobMessage.for_job(good).encode(), good.id)  # a redelivery of a finished job
    assert _deliver(processor, broker) == []


def test_the_worker_announces_finished_jobs_after_writing_them(
    store: JobStore, lite0: LoadedModel, seeded: tuple[Path, Path]
) -> None:
    from classifier_common.broker import connect_consumer, connect_listener
    from classifier_common.broker.memory import broker_for, forget_broker
    from classifier_common.config import Settings
    from classifier_worker.worker import Worker

    settings = Settings(broker_url=f"memory://announce-{uuid.uuid4().hex[:8]}", spool_dir=None, gallery_dir=seeded[1])
    heard: list[tuple[str, JobStatus]] = []
    listener = connect_listener(settings)
    # What the store says when the notice arrives: the outcome must be written before it.
    listener.start(lambda ids: heard.extend((i, store.get(i).status) for i in ids), lambda: None)
    worker = Worker(settings, connect_consumer(settings), store, {"efficientnet_lite0": lite0})
    worker.start()
    try:
        job = _submit(store, broker_for(settings))
        deadline = time.monotonic() + 30
        while not heard:
            assert time.monotonic() < deadline, "no notice within 30 s"
            time.sleep(0.01)
    finally:
        worker.stop(timeout=10)
        listener.close()
        forget_broker(settings.broker_url)
    assert heard == [(job.id, JobStatus.succeeded)]


@pytest.mark.parametrize(("prefetch", "warned"), [(4, True), (8, False)])
def test_a_prefetch_too_small_for_every_job_thread_to_fill_a_batch_is_logged(
    store: JobStore, seeded: tuple[Path, Path], caplog: pytest.LogCaptureFixture, prefetch: int, warned: bool
) -> None:
    from classifier_common.broker import connect_consumer
    from classifier_common.broker.memory import forget_broker
    from classifier_common.config import Settings
    from classifier_worker.worker import Worker

    settings = Settings(
        broker_url=f"memory://prefetch-{uuid.uuid4().hex[:8]}",
        spool_dir=None,
        gallery_dir=seeded[1],
        prefetch=prefetch,
        max_batch=4,
    )
    with caplog.at_level(logging.WARNING, logger="classifier_worker.worker"):
        Worker(settings, connect_consumer(settings), store, {}, threads=2)
    forget_broker(settings.broker_url)
    logged = [r.getMessage() for r in caplog.records if "CLASSIFIER_PREFETCH" in r.getMessage()]
    assert logged == (
        [f"CLASSIFIER_PREFETCH ({prefetch}) is less than CLASSIFIER_WORKER_THREADS x CLASSIFIER_MAX_BATCH (2 x 4): "
         "the job threads share the prefetched messages, so they cannot each fill a batch"]
        if warned
        else []
    )  # fmt: skip


# --- one delivery's fate never touches another's -----------------------------------------------


def test_a_batch_with_broken_images_and_a_nesting_bomb_settles_each_delivery_alone(
    processor: Processor, store: JobStore, broker: MemoryBroker
) -> None:
    """Malformed-EXIF uploads (Pillow raises TypeError, struct.error, AttributeError) and a message
    nested too deep to parse, among good jobs in one batch: each broken one fails or is
    dead-lettered alone, each good one runs once, nothing is requeued."""
    broken = bad_exif_images()
    good_before = _submit(store, broker)
    bad = [
        _submit(store, broker, image=f"{name}.img", upload=broken[name])
        for name in ("jpeg-rational-as-text", "png-short-as-text", "webp-text-as-rational")
    ]
    broker.publish(b"[" * 100_000 + b"]" * 100_000, "nested")
    good_after = _submit(store, broker)
    finished = _deliver(processor, broker)
    for job in (good_before, good_after):
        stored = store.get(job.id)
        assert stored.status is JobStatus.succeeded and stored.attempts == 1, stored
    for job in bad:
        stored = store.get(job.id)
        assert stored.status is JobStatus.failed and stored.error.code == "invalid_image", stored
        assert stored.attempts == 1
    assert [d.message_id for d in broker.dead] == ["nested"]
    assert broker.ready_count == broker.unacked_count == 0
    assert sorted(finished) == sorted(j.id for j in (good_before, *bad, good_after))


@dataclass
class _FailsOnRed:
    """The real model, except that a forward pass holding a red image raises (a model bug that
    one input triggers)."""

    model: LoadedModel

    @property
    def spec(self):  # noqa: ANN201 - the LoadedModel's
        return self.model.spec

    @property
    def version(self) -> str:
        return self.model.version

    def predict(self, images: list[Image.Image]) -> list:
        if any(img.getpixel((0, 0)) == (255, 0, 0) for img in images):
            raise RuntimeError("the model failed")
        return self.model.predict(images)


def test_a_forward_pass_that_fails_retries_only_the_image_that_failed(
    store: JobStore, broker: MemoryBroker, lite0: LoadedModel, seeded: tuple[Path, Path]
) -> None:
    processor = Processor(
        store, {"efficientnet_lite0": _FailsOnRed(lite0)}, seeded[1], max_attempts=MAX_ATTEMPTS, result_cache=False
    )
    red = io.BytesIO()
    Image.new("RGB", (64, 64), (255, 0, 0)).save(red, "PNG")
    good = [_submit(store, broker) for _ in range(2)]
    culprit = _submit(store, broker, image="red.png", upload=red.getvalue())
    good.append(_submit(store, broker))
    _deliver(processor, broker)
    assert all(store.get(j.id).status is JobStatus.succeeded and store.get(j.id).attempts == 1 for j in good)
    assert store.get(culprit.id).status is JobStatus.running and broker.ready_count == 1  # it alone is retried
    while broker.ready_count:
        _deliver(processor, broker)
    stored = store.get(culprit.id)
    assert stored.status is JobStatus.failed and stored.error.code == "inference_failed"
    assert stored.attempts == MAX_ATTEMPTS and not broker.dead


def test_worker_threads_sharing_a_processor_announce_each_job_once(
    store: JobStore, lite0: LoadedModel, seeded: tuple[Path, Path]
) -> None:
    """CLASSIFIER_WORKER_THREADS > 1: every thread's batch returns its own finished ids."""
    from classifier_common.broker import connect_consumer, connect_listener
    from classifier_common.broker.memory import broker_for, forget_broker
    from classifier_common.config import Settings
    from classifier_worker.worker import Worker

    settings = Settings(
        broker_url=f"memory://threads-{uuid.uuid4().hex[:8]}", spool_dir=None, gallery_dir=seeded[1], prefetch=8
    )
    heard: list[str] = []
    listener = connect_listener(settings)
    listener.start(heard.extend, lambda: None)
    jobs = [_submit(store, broker_for(settings)) for _ in range(60)]
    worker = Worker(settings, connect_consumer(settings), store, {"efficientnet_lite0": lite0}, threads=4)
    worker.start()
    try:
        deadline = time.monotonic() + 120
        while not all(store.get(j.id).status.finished for j in jobs):
            assert time.monotonic() < deadline, "the jobs did not finish within 120 s"
            time.sleep(0.05)
        time.sleep(0.2)  # the last notices follow the last writes
    finally:
        worker.stop(timeout=10)
        listener.close()
        forget_broker(settings.broker_url)
    assert sorted(heard) == sorted(j.id for j in jobs)
