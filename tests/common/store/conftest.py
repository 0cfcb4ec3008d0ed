"""Fixtures for the job store contract: one ``store`` fixture, parametrized over the adapters.

SQLite always runs for real (a file under tmp_path). The Mongo adapter runs against the server
at ``TEST_MONGO_URL`` when it is set (each test in a database of its own, dropped afterwards),
otherwise against mongomock. The test ids (``mongo-real-<host>`` or ``mongo-mongomock``) and a
line at the end of the run say which one ran.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import mongomock
import pymongo
import pytest

from classifier_common.store.base import JobStore
from classifier_common.store.mongo import MongoJobStore
from classifier_common.store.sqlite import SqliteJobStore

MONGO_URL = os.environ.get("TEST_MONGO_URL") or None

SQLITE = "sqlite"
MONGOMOCK = "mongo-mongomock"
MONGO_REAL = f"mongo-real-{urlsplit(MONGO_URL).hostname}" if MONGO_URL else None
MONGO = MONGO_REAL or MONGOMOCK

ALL_BACKENDS = [SQLITE, MONGO]
# Backends whose atomicity is the real database's: mongomock has no locking, so racing threads
# against it would test mongomock, not the adapter.
THREAD_SAFE_BACKENDS = [SQLITE] + ([MONGO_REAL] if MONGO_REAL else [])


def _mongo_description() -> str:
    if MONGO_REAL:
        return f"a real MongoDB at {urlsplit(MONGO_URL).hostname} (TEST_MONGO_URL)"
    return f"mongomock {mongomock.__version__} (set TEST_MONGO_URL to run against a real MongoDB)"


def pytest_report_header() -> str:
    return f"job store contract: Mongo adapter against {_mongo_description()}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    # pytest_report_header only runs for conftest files known at start-up; this one always runs.
    terminalreporter.write_line(f"job store contract: Mongo adapter ran against {_mongo_description()}")


def _real_mongo_url(database: str) -> str:
    assert MONGO_URL is not None
    return urlsplit(MONGO_URL)._replace(path=f"/{database}").geturl()


@pytest.fixture(params=ALL_BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path) -> Iterator[JobStore]:
    kind = request.param
    if kind == SQLITE:
        sqlite_store = SqliteJobStore(tmp_path / "jobs.db")
        yield sqlite_store
        sqlite_store.close()
    elif kind == MONGOMOCK:
        mock_store = MongoJobStore("mongodb://mongomock/classifier_test", client=mongomock.MongoClient())
        yield mock_store
        mock_store.close()
    else:
        database = f"classifier_test_{uuid.uuid4().hex[:12]}"
        real_store = MongoJobStore(_real_mongo_url(database))
        yield real_store
        real_store.close()
        with pymongo.MongoClient(MONGO_URL, serverSelectionTimeoutMS=2000) as admin:
            admin.drop_database(database)


@pytest.fixture
def store_kind(store: JobStore, request: pytest.FixtureRequest) -> str:
    """Which backend the ``store`` of this test is."""
    return request.node.callspec.params["store"]
