"""open_store: the adapter and its location, chosen by CLASSIFIER_STORE_URL."""

from __future__ import annotations

import pytest

from classifier_common.store import open_store, sqlite_path
from classifier_common.store.mongo import MongoJobStore, database_name
from classifier_common.store.sqlite import SqliteJobStore
from tests.utils.jobs import queued_job


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///data/jobs.db", "data/jobs.db"),
        ("sqlite:///./data/jobs.db", "./data/jobs.db"),
        ("sqlite:////var/lib/classifier/jobs.db", "/var/lib/classifier/jobs.db"),
        ("sqlite:///my%20jobs.db", "my jobs.db"),
    ],
)
def test_sqlite_url_names_a_file(url: str, path: str) -> None:
    assert sqlite_path(url) == path


@pytest.mark.parametrize(
    "url",
    [
        "sqlite://:memory:",
        "sqlite:///:memory:",
        "sqlite:///",
        "sqlite:///data/",
        "sqlite://host/jobs.db",
        "sqlite:///jobs.db?mode=ro",
    ],
)
def test_sqlite_url_without_a_usable_file_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="SQLite store URL"):
        open_store(url)


def test_open_sqlite_store_relative_to_the_working_directory(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store("sqlite:///./data/jobs.db")  # the Settings default
    try:
        assert isinstance(store, SqliteJobStore)
        job = queued_job(model="resnet18", image="x.png", source="upload")
        store.create(job)
        assert store.get(job.id) == job
    finally:
        store.close()
    assert (tmp_path / "data" / "jobs.db").is_file()


def test_open_sqlite_store_absolute_path(tmp_path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/jobs.db")  # tmp_path starts with "/"
    try:
        assert isinstance(store, SqliteJobStore)
        assert store.path == tmp_path / "jobs.db"
    finally:
        store.close()


@pytest.mark.parametrize(
    ("url", "database"),
    [
        ("mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=100", "classifier"),
        ("mongodb://127.0.0.1:1", "classifier"),
        (
            "mongodb://user:pw@127.0.0.1:1,127.0.0.1:2/jobs_prod?replicaSet=rs0",
            "jobs_prod",
        ),
    ],
)
def test_open_mongo_store_names_the_database(url: str, database: str) -> None:
    store = open_store(url, retention_s=3600)  # no server needed: opening does not connect
    try:
        assert isinstance(store, MongoJobStore)
        assert store.database.name == database
        assert store.retention_s == 3600
    finally:
        store.close()


def test_mongodb_srv_url_database() -> None:
    # Not opened: a mongodb+srv:// client resolves DNS when it is built.
    assert database_name("mongodb+srv://u:p@cluster0.example.net/prod?retryWrites=true") == "prod"
    assert database_name("mongodb+srv://cluster0.example.net/") == "classifier"


@pytest.mark.parametrize(
    "url",
    ["postgresql://app:s3cret@db:5432/jobs", "redis://localhost", "data/jobs.db", ""],
)
def test_unknown_scheme_is_refused_without_leaking_the_password(url: str) -> None:
    with pytest.raises(ValueError, match="unsupported store URL") as raised:
        open_store(url)
    assert "sqlite:///" in str(raised.value) and "mongodb://" in str(raised.value)
    assert "s3cret" not in str(raised.value)
