"""The MongoDB store's client settings for a replica set: majority writes with a time limit,
retryable writes and reads; a setting in the URL wins. Real pymongo clients (they connect in the
background, so no server is needed to read their options), and mongomock for the collections."""

from __future__ import annotations

from collections.abc import Iterator

import mongomock
import pytest
from pymongo.errors import WTimeoutError

from classifier_common.errors import StoreUnavailable
from classifier_common.store.mongo import WRITE_TIMEOUT_MS, MongoJobStore
from tests.utils.jobs import queued_job

# Nothing listens here (a port of this suite's own range); the options are read without a server.
NOWHERE = "127.0.0.1:25017"
REPLICA_SET = f"mongodb://{NOWHERE},127.0.0.1:25018,127.0.0.1:25019/classifier?replicaSet=rs0&authSource=admin"


@pytest.fixture
def open_store() -> Iterator[list[MongoJobStore]]:
    stores: list[MongoJobStore] = []
    yield stores
    for store in stores:
        store.close()


def opened(stores: list[MongoJobStore], url: str) -> MongoJobStore:
    store = MongoJobStore(url)
    stores.append(store)
    return store


def test_writes_wait_for_a_majority_with_a_time_limit(open_store: list[MongoJobStore]) -> None:
    store = opened(open_store, REPLICA_SET)
    assert store._client.options.write_concern.document == {"w": "majority", "wtimeout": WRITE_TIMEOUT_MS}
    # Every collection the store writes inherits it.
    for collection in (store._jobs, store._cache, store._workers):
        assert collection.write_concern.document == {"w": "majority", "wtimeout": WRITE_TIMEOUT_MS}


def test_writes_and_reads_are_retried_across_a_failover(open_store: list[MongoJobStore]) -> None:
    store = opened(open_store, REPLICA_SET)
    assert store._client.options.retry_writes is True
    assert store._client.options.retry_reads is True


def test_the_url_lists_every_member_and_names_the_replica_set(open_store: list[MongoJobStore]) -> None:
    store = opened(open_store, REPLICA_SET)
    assert store._client.options.replica_set_name == "rs0"
    assert store._client._topology_settings.seeds == {("127.0.0.1", 25017), ("127.0.0.1", 25018), ("127.0.0.1", 25019)}
    assert store.database.name == "classifier"


@pytest.mark.parametrize(
    ("query", "document", "retry_writes"),
    [
        ("w=1", {"w": 1, "wtimeout": WRITE_TIMEOUT_MS}, True),
        ("w=majority&wtimeoutMS=500", {"w": "majority", "wtimeout": 500}, True),
        ("retryWrites=false", {"w": "majority", "wtimeout": WRITE_TIMEOUT_MS}, False),
    ],
)
def test_a_setting_in_the_url_wins(
    open_store: list[MongoJobStore], query: str, document: dict, retry_writes: bool
) -> None:
    store = opened(open_store, f"mongodb://{NOWHERE}/classifier?{query}")
    assert store._client.options.write_concern.document == document
    assert store._client.options.retry_writes is retry_writes


def test_a_majority_write_that_times_out_is_unavailable_not_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """No majority within wtimeout (two of three members down): a 503 with Retry-After, never a
    500. mongomock raises the error pymongo raises for it."""
    store = MongoJobStore("mongodb://mongomock/classifier", client=mongomock.MongoClient())
    store.ping()

    def no_majority(*args: object, **kwargs: object) -> None:
        raise WTimeoutError("waiting for replication timed out", 64, {"writeConcernError": {"code": 64}})

    monkeypatch.setattr(store._jobs, "insert_one", no_majority)
    with pytest.raises(StoreUnavailable) as raised:
        store.create(queued_job())
    assert raised.value.retry_after == 5
