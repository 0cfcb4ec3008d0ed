"""classifier_gateway.batch_submission with a real SQLite store and a publisher that can be told
to refuse: items refused for a passing reason, the store lost, and a retry after a crash."""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path

import pytest

from classifier_common.batches import batch_id_for
from classifier_common.domain import JobStatus
from classifier_common.errors import BrokerUnavailable, ClassifierError, QueueFull, StoreUnavailable
from classifier_common.images import Gallery
from classifier_common.store.sqlite import SqliteJobStore
from classifier_gateway.batch_submission import BatchRequest, Item, submit_batch

GOLDFINCH = "n01531178_goldfinch.JPEG"
ORANGE = "n07747607_orange.JPEG"


class Publisher:
    """Records what it publishes; raises ``refuse`` (if set) from the ``refuse_from``-th call on."""

    def __init__(self, refuse: ClassifierError | None = None, refuse_from: int = 0):
        self.published: list[str] = []
        self.refuse, self.refuse_from = refuse, refuse_from

    def publish(self, body: bytes, *, message_id: str, pool: str = "default") -> None:
        if self.refuse is not None and len(self.published) >= self.refuse_from:
            raise self.refuse
        self.published.append(message_id)

    def start_publish(self, body: bytes, *, message_id: str, pool: str = "default") -> Future[None]:
        published: Future[None] = Future()
        try:
            self.publish(body, message_id=message_id, pool=pool)
        except ClassifierError as exc:
            published.set_exception(exc)
        else:
            published.set_result(None)
        return published

    def ping(self) -> None: ...

    def depth(self) -> int:
        return len(self.published)

    def close(self) -> None: ...


@pytest.fixture
def store(tmp_path: Path):
    store = SqliteJobStore(tmp_path / "jobs.db")
    yield store
    store.close()


@pytest.fixture
def gallery(seeded: tuple[Path, Path]) -> Gallery:
    return Gallery(seeded[1])


def request(*names: str, key: str | None = None) -> BatchRequest:
    return BatchRequest(
        id=batch_id_for("", key),
        model="efficientnet_lite0",
        pool="default",
        items=[Item(image=name, source="gallery") for name in names],
        client_id="",
        idempotency_key=key,
        callback_url=None,
        request_id=None,
        max_upload_bytes=1024,
        claim_check_bytes=256 * 1024,
    )


def test_queue_full_for_some_items_refuses_those_alone(store, gallery) -> None:
    publisher = Publisher(QueueFull("the job queue is full"), refuse_from=1)
    batch, created = submit_batch(store, publisher, gallery, request(GOLDFINCH, ORANGE))
    assert created
    accepted, refused = batch.items
    assert accepted.job_id in publisher.published and refused.job_id is None
    assert refused.error is not None and refused.error.code == "queue_full"
    # the refused item's job was rolled back, as a refused single submission's is
    assert store.count_by_status()[JobStatus.queued.value] == 1
    assert store.get_batch(batch.id) == batch


@pytest.mark.parametrize("error", [QueueFull("full"), BrokerUnavailable("broker host down")])
def test_every_item_refused_for_a_passing_reason_answers_that_reason(store, gallery, error) -> None:
    with pytest.raises(type(error)):
        submit_batch(store, Publisher(error), gallery, request(GOLDFINCH, ORANGE))
    assert store.count_by_status()[JobStatus.queued.value] == 0


def test_an_item_refused_by_the_broker_says_so_in_public_words(store, gallery) -> None:
    publisher = Publisher(BrokerUnavailable("amqp://10.0.0.7 refused"), refuse_from=1)
    batch, _ = submit_batch(store, publisher, gallery, request(GOLDFINCH, ORANGE))
    error = batch.items[1].error
    assert error is not None and error.code == "broker_unavailable"
    assert "10.0.0.7" not in error.message and error.details is None


def test_store_lost_fails_the_whole_request(store, gallery) -> None:
    store.close()
    with pytest.raises(StoreUnavailable):
        submit_batch(store, Publisher(), gallery, request(GOLDFINCH))


def test_retry_after_a_crash_before_the_batch_was_recorded_finds_the_same_jobs(store, gallery) -> None:
    """The first attempt queued its jobs and died before writing the batch: the retry with the
    same key makes no second job and records the batch once."""
    first_publisher = Publisher()
    original = store.create_batch

    def crash(_batch: object) -> None:
        raise SystemExit("the gateway died")

    store.create_batch = crash  # type: ignore[method-assign]
    with pytest.raises(SystemExit):
        submit_batch(store, first_publisher, gallery, request(GOLDFINCH, ORANGE, key="k"))
    store.create_batch = original  # type: ignore[method-assign]
    assert store.count_by_status()[JobStatus.queued.value] == 2

    retry_publisher = Publisher()
    batch, created = submit_batch(store, retry_publisher, gallery, request(GOLDFINCH, ORANGE, key="k"))
    assert created
    assert [item.job_id for item in batch.items] == first_publisher.published
    assert retry_publisher.published == first_publisher.published  # still queued: published again
    assert store.count_by_status()[JobStatus.queued.value] == 2
