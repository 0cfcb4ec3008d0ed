"""A dependency down or the queue full: the client gets 503/429 with Retry-After, in the one
error shape, and a refused job really does not exist."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from classifier_common.config import Settings
from classifier_gateway.main import create_app
from devstack.isolated import AMQP_URL
from devstack.stack import delete_job_queues
from tests.utils.api import assert_error_shape

BODY = {"model": "efficientnet_lite0", "image": "n01531178_goldfinch.JPEG"}


def _settings(tmp_path: Path, seeded: tuple[Path, Path], **overrides: object) -> Settings:
    values: dict[str, object] = {
        "store_url": f"sqlite:///{tmp_path}/jobs.db",
        "models_dir": seeded[0],
        "gallery_dir": seeded[1],
        "log_format": "text",
    }
    values.update(overrides)
    return Settings(**values)


def _job_count(settings: Settings) -> int:
    from classifier_common.store import open_store

    store = open_store(settings.store_url)
    try:
        return sum(store.count_by_status().values())
    finally:
        store.close()


def test_broker_unreachable_is_503_and_nothing_is_kept(tmp_path: Path, seeded: tuple[Path, Path]) -> None:
    settings = _settings(tmp_path, seeded, broker_url="amqp://guest:guest@127.0.0.1:1/%2F")
    with TestClient(create_app(settings)) as client:
        response = client.post("/v1/jobs", json=BODY)
        assert_error_shape(response, 503, "broker_unavailable")
        assert int(response.headers["retry-after"]) > 0
        ready = client.get("/readyz")
        assert_error_shape(ready, 503, "not_ready")
        assert ready.json()["error"]["details"]["broker"]
    assert _job_count(settings) == 0


def test_store_unreachable_is_503(tmp_path: Path, seeded: tuple[Path, Path]) -> None:
    (tmp_path / "not-a-dir").write_text("a file where the database directory should be")
    settings = _settings(
        tmp_path,
        seeded,
        broker_url=f"memory://{uuid.uuid4().hex}",
        spool_dir=None,
        store_url=f"sqlite:///{tmp_path}/not-a-dir/jobs.db",
        models=["efficientnet_lite0"],
    )
    with TestClient(create_app(settings)) as client:
        response = client.post("/v1/jobs", json=BODY)
        assert_error_shape(response, 503, "store_unavailable")
        assert str(tmp_path) not in response.text  # the cause is logged, not shown to clients
        assert int(response.headers["retry-after"]) > 0
        assert client.get("/readyz").json()["error"]["details"]["store"]
        assert client.get("/healthz").status_code == 200  # alive, just not ready


@pytest.mark.rabbitmq
def test_full_queue_is_429_and_the_refused_job_does_not_exist(tmp_path: Path, seeded: tuple[Path, Path]) -> None:
    queue = f"test.{uuid.uuid4().hex[:8]}.jobs"
    settings = _settings(tmp_path, seeded, broker_url=AMQP_URL, queue_name=queue, queue_max_length=3)
    try:
        with TestClient(create_app(settings)) as client:  # no workers: the queue only fills
            responses = [client.post("/v1/jobs", json=BODY) for _ in range(8)]
            accepted = [r for r in responses if r.status_code == 202]
            refused = [r for r in responses if r.status_code == 429]
            assert len(accepted) + len(refused) == 8 and refused
            for response in refused:
                assert_error_shape(response, 429, "queue_full")
                assert int(response.headers["retry-after"]) > 0
        from classifier_common.store import open_store

        store = open_store(settings.store_url)
        assert all(store.get(r.json()["id"]).status.value == "queued" for r in accepted)
        assert _job_count(settings) == len(accepted)  # the refused ones were rolled back
    finally:
        delete_job_queues(AMQP_URL, queue)  # the pool's queue <queue>.default, its .dead and the exchange


def _store_not_ready(client: TestClient) -> str | None:
    """Why /readyz says the store is not ready, None if it does not."""
    ready = client.get("/readyz")
    if ready.status_code == 200:
        return None
    return assert_error_shape(ready, 503, "not_ready")["error"]["details"]["store"]


def test_sqlite_file_deleted_under_the_gateway_is_503_and_not_ready(tmp_path: Path, seeded: tuple[Path, Path]) -> None:
    settings = _settings(
        tmp_path, seeded, broker_url=f"memory://{uuid.uuid4().hex}", spool_dir=None, shutdown_grace_s=1
    )
    with TestClient(create_app(settings)) as client:
        assert client.post("/v1/jobs", json=BODY).status_code == 202
        assert _store_not_ready(client) is None
        (tmp_path / "jobs.db").unlink()
        assert "deleted" in _store_not_ready(client)
        for _ in range(3):  # every try, on whichever thread: none is acknowledged
            response = client.post("/v1/jobs", json=BODY)
            assert_error_shape(response, 503, "store_unavailable")
        assert not (tmp_path / "jobs.db").exists()
